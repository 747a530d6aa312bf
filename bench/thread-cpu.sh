#!/bin/bash
# CPU of each thread of process PID over SECONDS, in cores (1.00 = one core busy the whole
# time), with voluntary and involuntary context switches. Run it while wrk drives the
# process (BENCHMARKS.md, "What each stage costs"). Threads of the same name are summed.
# usage: bench/thread-cpu.sh PID SECONDS
set -euo pipefail
pid=$1 secs=$2
hz=$(getconf CLK_TCK)
snap() {
  for t in /proc/"$pid"/task/*; do
    # comm may hold spaces ("actix-server worker 0"): read stat after the closing ')'.
    printf '%s %s %s %s\n' "$(tr ' ' _ < "$t"/comm)" \
      "$(sed 's/.*) //' "$t"/stat | awk '{print $12 + $13}')" \
      "$(awk '/^voluntary_ctxt_switches/{print $2}' "$t"/status)" \
      "$(awk '/^nonvoluntary_ctxt_switches/{print $2}' "$t"/status)"
  done | sort
}
before=$(snap)
sleep "$secs"
after=$(snap)
join <(echo "$before" | awk '{print $1"#"NR, $2, $3, $4}' | sort) \
     <(echo "$after" | awk '{print $1"#"NR, $2, $3, $4}' | sort) |
  awk -v s="$secs" -v hz="$hz" '{split($1, n, "#"); cpu[n[1]] += ($5 - $2) / hz / s;
      vol[n[1]] += $6 - $3; inv[n[1]] += $7 - $4}
    END {for (t in cpu) printf "%-24s %5.2f cores  %8d voluntary  %8d involuntary switches\n",
      t, cpu[t], vol[t], inv[t]}' | sort
