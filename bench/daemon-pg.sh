#!/bin/bash
# The daemon as bench/daemon-dry-run.sh runs it, with the state in PostgreSQL instead of
# SQLite (a fresh database each start, dropped first): the durable accept of a replica.
# BENCH_PG_ADMIN: the server's admin URL (default the local one, trust auth);
# BENCH_PG_DB: the database's name; BENCH_BIND, BENCH_BIN as in daemon-dry-run.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
admin="${BENCH_PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}"
db="${BENCH_PG_DB:-autoscaler_bench}"
psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
export AUTOSCALER__SERVER__BIND="${BENCH_BIND:-127.0.0.1:18094}"
export AUTOSCALER__STATE__DATABASE_URL="${admin%/*}/$db"
export AUTOSCALER__RULES__PATH="$here/rules.toml"
export AUTOSCALER__LOG__LEVEL=warn
unset CLOUDAMQP_API_KEY AUTOSCALER__CLOUDAMQP__API_KEY
exec "${BENCH_BIN:-$here/target/release/cloudamqp-autoscaler}" serve
