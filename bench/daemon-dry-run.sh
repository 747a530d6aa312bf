#!/bin/bash
# The daemon as the wrk harness measures it (see BENCHMARKS.md): a dry run without an API
# key on 127.0.0.1:18090, fresh state, warnings only. Every alarm is durably recorded and
# decided (the harness's body names a UUID that cannot be resolved without a key, so each
# alarm is skipped with instance_unknown, without any outbound call).
# BENCH_BIND, BENCH_STATE_DIR: to run two daemons side by side.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
state="${BENCH_STATE_DIR:-/tmp/cloudamqp-autoscaler-bench}"
rm -rf "$state"
export AUTOSCALER__SERVER__BIND="${BENCH_BIND:-127.0.0.1:18090}"
export AUTOSCALER__STATE__DIR="$state"
export AUTOSCALER__RULES__PATH="$here/rules.toml"
export AUTOSCALER__LOG__LEVEL=warn
unset CLOUDAMQP_API_KEY AUTOSCALER__CLOUDAMQP__API_KEY
# BENCH_BIN: another build to compare (e.g. an older commit's), same settings.
exec "${BENCH_BIN:-$here/target/release/cloudamqp-autoscaler}" serve
