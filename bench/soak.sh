#!/bin/bash
# Soak: the daemon (release, dry run) under a steady stream of alarms for a long time,
# its RSS sampled every 10 s. Verdict: memory is flat — RSS at the end within 10 % (or
# 2 MiB) of RSS after the first minute. The state store grows on disk, not in memory.
#
#   bench/soak.sh [minutes] [requests_per_second]      (default 10 minutes, 500/s)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
minutes="${1:-10}"
rate="${2:-500}"
work="$(mktemp -d)"
trap 'kill "$daemon" 2>/dev/null || true; rm -rf "$work"' EXIT
port=18096
base="http://127.0.0.1:$port"
AUTOSCALER__SERVER__BIND="127.0.0.1:$port" AUTOSCALER__STATE__DIR="$work/state" \
AUTOSCALER__RULES__PATH="$here/rules.toml" AUTOSCALER__LOG__LEVEL=error \
  "$here/target/release/cloudamqp-autoscaler" serve &
daemon=$!
for _ in $(seq 50); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.1; done

# One connection per wrk thread, each pausing between requests: about $rate requests/s.
lua="$work/post.lua"
cat > "$lua" <<LUA
wrk.method = "POST"
wrk.body = io.open("$here/examples/alarms/memory-85.json"):read("*a")
delay = function() return math.floor(2 * 1000 / $rate) end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK requests=%d non2xx=%d errors=%d\n", summary.requests, e.status,
    e.connect + e.read + e.write + e.timeout))
end
LUA
seconds=$(( minutes * 60 ))
wrk -t2 -c2 -d"${seconds}s" --timeout 5s -s "$lua" "$base/cloudamqp/alarm" > "$work/wrk.txt" &
wrk_pid=$!
echo "elapsed_s,rss_kib"
samples=()
for (( t = 0; t <= seconds; t += 10 )); do
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$daemon/status")
  echo "$t,$rss"
  samples+=("$rss")
  (( t < seconds )) && sleep 10
done
wait "$wrk_pid"
grep WRK "$work/wrk.txt"
echo "state store on disk: $(du -sh "$work/state" | cut -f1)"
first=${samples[6]}      # after one minute
last=${samples[-1]}
limit=$(( first + (first / 10 > 2048 ? first / 10 : 2048) ))
echo "RSS after 1 min: ${first} KiB; at the end: ${last} KiB; limit ${limit} KiB"
if (( last <= limit )); then echo "VERDICT: pass (memory flat)"; else echo "VERDICT: FAIL (memory grew)"; exit 1; fi
