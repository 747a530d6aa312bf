#!/bin/bash
# 100 SIGHUPs while wrk loads the webhook, alternating a valid and an invalid rules file.
# Verdicts: wrk sees no socket error and no non-2xx answer; after every reload /status shows
# the last *valid* file's hash in force (an invalid file is never in force); the daemon
# counted every reload. Needs wrk and the release binary (cargo build --release --locked).
#
#   bench/reload-under-load.sh [duration_seconds]     (default 40)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
duration="${1:-40}"
work="$(mktemp -d)"
trap 'kill "$daemon" 2>/dev/null || true; rm -rf "$work"' EXIT
port=18095
base="http://127.0.0.1:$port"

valid_a="$here/rules.toml"
valid_b="$work/valid-b.toml"
sed 's/above = 80/above = 85/' "$valid_a" > "$valid_b"
invalid="$work/invalid.toml"
printf '[[rules]]\nname = "broken"\nalarm = "memroy"\nladder = "nowhere"\n' > "$invalid"
hash() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }

cp "$valid_a" "$work/rules.toml"
AUTOSCALER__SERVER__BIND="127.0.0.1:$port" AUTOSCALER__STATE__DIR="$work/state" \
AUTOSCALER__RULES__PATH="$work/rules.toml" AUTOSCALER__LOG__LEVEL=error \
  "$here/target/release/cloudamqp-autoscaler" serve &
daemon=$!
for _ in $(seq 50); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.1; done

body="$here/examples/alarms/memory-85.json"
lua="$work/post.lua"
cat > "$lua" <<LUA
wrk.method = "POST"
wrk.body = io.open("$body"):read("*a")
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK requests=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, e.status, e.connect, e.read, e.write, e.timeout))
end
LUA
wrk -t2 -c32 -d"${duration}s" -s "$lua" "$base/cloudamqp/alarm" > "$work/wrk.txt" &
wrk_pid=$!
sleep 1

in_force="$(hash "$valid_a")"
bad=0
gap=$(python3 -c "print(max(0.05, ($duration - 3) / 100))")
for i in $(seq 1 100); do
  if (( i % 2 == 0 )); then
    cp "$invalid" "$work/rules.toml"
  else
    if (( i % 4 == 1 )); then src="$valid_b"; else src="$valid_a"; fi
    cp "$src" "$work/rules.toml"
    in_force="$(hash "$src")"
  fi
  kill -HUP "$daemon"
  sleep "$gap"
  status="$(curl -fs "$base/status")"
  shown="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["rules"]["hash"])' "$status")"
  if [[ "$shown" != "$in_force" ]]; then
    echo "reload $i: $shown in force, expected $in_force" >&2
    bad=$((bad + 1))
  fi
done
wait "$wrk_pid"
metrics="$(curl -fs "$base/metrics")"
ok=$(grep -E '^autoscaler_rules_reloads_total\{result="success"\}' <<<"$metrics" | awk '{print $2}')
failed=$(grep -E '^autoscaler_rules_reloads_total\{result="failure"\}' <<<"$metrics" | awk '{print $2}')
grep WRK "$work/wrk.txt"
echo "reloads: success=$ok failure=$failed; wrong rules in force after a reload: $bad"
wrk_line="$(grep WRK "$work/wrk.txt")"
errors=$(( $(sed -E 's/.*non2xx=([0-9]+) connect=([0-9]+) read=([0-9]+) write=([0-9]+) timeout=([0-9]+)/\1+\2+\3+\4+\5/' <<<"$wrk_line") ))
# Reloads close together may coalesce into one (by design); each was checked above anyway.
if [[ "$bad" == 0 && "$errors" == 0 && $(( ok + failed )) -ge 90 ]]; then
  echo "VERDICT: pass"
else
  echo "VERDICT: FAIL (failed requests: $errors)"
  exit 1
fi
