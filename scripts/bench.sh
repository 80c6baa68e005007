#!/usr/bin/env bash
# Runs one benchmark (bench/NAME.ts; extra arguments go to it) with what it needs: setup.sh, the
# Temporal CLI, and a throwaway PostgreSQL, stopped at the end. E.g. `bash scripts/bench.sh tasks --no-write`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
name="${1:?usage: bash scripts/bench.sh NAME [args...] (a file of bench/)}"
shift
[[ -f "bench/$name.ts" ]] || die "no bench/$name.ts"
trap stop_throwaway_postgres EXIT
bash scripts/setup.sh
TEMPORAL_CLI_PATH="$(temporal_bin)"
export TEMPORAL_CLI_PATH
start_throwaway_postgres
node_modules/.bin/ts-node --transpile-only "bench/$name.ts" "$@"
