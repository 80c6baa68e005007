#!/usr/bin/env bash
# Runs every check: setup.sh, a throwaway PostgreSQL for the suites, the type check, the linters, then jest in band (extra arguments go to jest,
# e.g. `bash scripts/test.sh test/temporal-harness.test.ts`). Works with CI=true and no terminal.
# A dockerd started by this run is stopped at the end (KEEP_DOCKERD=1 keeps it).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
T0="$(date +%s.%N)"

cleanup() {
  stop_throwaway_postgres
  stop_dockerd_if_started_here
}
trap cleanup EXIT
note_dockerd_before_setup
bash scripts/setup.sh
start_throwaway_postgres

# The Temporal test harness (test/helpers/temporal.ts) starts this binary.
TEMPORAL_CLI_PATH="$(temporal_bin)"
export TEMPORAL_CLI_PATH

say "type check: tsc --noEmit"
t="$(date +%s.%N)"
node_modules/.bin/tsc --noEmit -p tsconfig.json
say "type check passed in $(elapsed "$t")s"

say "lint: eslint, prettier --check, ruff check"
t="$(date +%s.%N)"
node_modules/.bin/eslint .
node_modules/.bin/prettier --check --log-level warn .
"$STATE_DIR/tools-venv/bin/ruff" check --quiet .
say "lint passed in $(elapsed "$t")s"

say "jest --runInBand $*"
t="$(date +%s.%N)"
results="$STATE_DIR/jest-results.json"
rm -f "$results"
set +e
node_modules/.bin/jest --runInBand --json --outputFile="$results" "$@"
rc=$?
set -e
# One plain closing line that any log reader understands: "jest: N passed, N failed, N skipped".
if [[ -s "$results" ]]; then
  node -e 'const r = require(process.argv[1]);
    console.log(`jest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);' "$results"
fi
say "jest exited $rc after $(elapsed "$t")s; total $(elapsed "$T0")s"
exit "$rc"
