#!/bin/bash
# CPU per request, by thread, of the daemon or the actix floor and of wrk itself, during one
# wrk run (-t2 -c64): the per-thread table of BENCHMARKS.md ("What each stage costs"); and
# how long each thread waited, runnable, for a CPU (/proc/PID/task/TID/schedstat).
#
# usage: bench/per-request-cpu.sh daemon|floor [--close] [SECONDS]
#   BENCH_DIR   the copied wrk harness (post.lua, body.json, the built actix-floor);
#               default /tmp/bench, as BENCHMARKS.md's commands copy it
#   BENCH_BIN   another daemon build (passed on to bench/daemon-dry-run.sh)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bench="${BENCH_DIR:-/tmp/bench}"
target=${1:?usage: per-request-cpu.sh daemon\|floor [--close] [SECONDS]}
shift
close=""
if [ "${1:-}" = "--close" ]; then close=close; shift; fi
secs=${1:-10}
port=18095
state=$(mktemp -d)
case "$target" in
  daemon)
    BENCH_BIND=127.0.0.1:$port BENCH_STATE_DIR="$state/state" "$here/daemon-dry-run.sh" \
      >"$state/server.log" 2>&1 &
    url=http://127.0.0.1:$port/cloudamqp/alarm ;;
  floor)
    "$bench/actix-floor/target/release/actix-floor" 127.0.0.1:$port 2 >"$state/server.log" 2>&1 &
    url=http://127.0.0.1:$port/webhook ;;
  *) echo "unknown target $target (daemon or floor)" >&2; exit 2 ;;
esac
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$state"' EXIT
for _ in $(seq 100); do
  curl -s -o /dev/null -XPOST -H 'content-type: application/json' --data @"$bench/body.json" "$url" && break
  sleep 0.1
done
cd "$bench"
wrk -t2 -c64 -d3s -s post.lua "$url" -- body.json $close >/dev/null   # warm-up
hz=$(getconf CLK_TCK)
snap() {
  for t in /proc/"$pid"/task/*; do
    # comm may hold spaces ("actix-server worker 0"): read stat after the closing ')'.
    # schedstat: ns on a CPU, ns runnable but waiting for one, times run (wake-ups).
    printf '%s %s %s\n' "$(tr ' ' _ < "$t"/comm)" "$(sed 's/.*) //' "$t"/stat | awk '{print $12 + $13}')" \
      "$(awk '{print $2, $3}' "$t"/schedstat)"
  done
}
before=$(snap)
/usr/bin/time -f '%U %S' -o "$state/wrk.time" \
  wrk -t2 -c64 -d"${secs}s" -s post.lua "$url" -- body.json $close >"$state/wrk.out"
after=$(snap)
requests=$(awk '/requests in/{print $1}' "$state/wrk.out")
echo "$target${close:+ (Connection: close)}: $(awk '/Requests\/sec/{print $2}' "$state/wrk.out") req/s, $requests requests"
paste <(echo "$before") <(echo "$after") |
  awk -v hz="$hz" -v n="$requests" '{cpu[$1] += ($6 - $2) / hz; wait[$1] += $7 - $3; runs[$1] += $8 - $4}
    END {for (t in cpu) if (cpu[t] > 0) printf "  %-24s %6.1f µs per request   waited for a CPU %5.1f µs per request, %5.1f µs per wake-up\n",
      t, cpu[t] * 1e6 / n, wait[t] / 1e3 / n, runs[t] ? wait[t] / 1e3 / runs[t] : 0}' | sort
awk -v n="$requests" '{printf "  %-24s %6.1f µs per request\n", "wrk", ($1 + $2) * 1e6 / n}' "$state/wrk.time"
