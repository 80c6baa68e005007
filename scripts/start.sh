#!/usr/bin/env bash
# Starts everything on this machine: setup.sh, a Temporal dev server (SQLite in $DATA_DIR/temporal.db,
# so workflows survive restarts; Web UI on TEMPORAL_UI_PORT), then the app (API + validation worker +
# task workers, app/main.ts compiled to dist/app/main.js). Ctrl-C / TERM stops what this script started, app first.
# Settings: the app's own (src/config.ts: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, HOST, PORT, DATA_DIR, ...)
# plus TEMPORAL_UI_PORT (gRPC port + 1000), TEMPORAL_START_TIMEOUT_S (30), LOCAL_PG_PORT (5432), KEEP_DOCKERD=1.
# With DATABASE_URL unset, a local PostgreSQL is started (data in $DATA_DIR/postgres, 127.0.0.1:LOCAL_PG_PORT).
# When something already answers on TEMPORAL_ADDRESS (a compose cluster, another dev server), it is used
# as is and no dev server is started.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

[[ -f app/main.ts ]] || die "app/main.ts is missing: nothing to start yet"

APP_PID="" TEMPORAL_PID="" PG_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  trap '' PIPE # Ctrl-C on `start.sh | tee` kills tee first: writing must not kill the cleanup
  set +e
  [[ -n "$APP_PID" ]] && stop_pid "$APP_PID" "app" 30
  [[ -n "$TEMPORAL_PID" ]] && stop_pid "$TEMPORAL_PID" "temporal dev server" 20
  [[ -n "$TEMPORAL_PID" ]] && rm -f "$STATE_DIR/temporal.pid"
  [[ -n "$PG_PID" ]] && stop_pid "$PG_PID" "postgres" 30
  stop_dockerd_if_started_here
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

note_dockerd_before_setup
bash scripts/setup.sh
[[ -f dist/app/main.js ]] || die "dist/app/main.js is missing after setup: run npm run build"
TEMPORAL="$(temporal_bin)"

export TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS:-127.0.0.1:7233}"
export TEMPORAL_NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
T_HOST="${TEMPORAL_ADDRESS%:*}" T_PORT="${TEMPORAL_ADDRESS##*:}"
[[ "$T_PORT" =~ ^[0-9]+$ && "$T_HOST" != "$TEMPORAL_ADDRESS" ]] || die "TEMPORAL_ADDRESS must be HOST:PORT, got '$TEMPORAL_ADDRESS'"
UI_PORT="${TEMPORAL_UI_PORT:-$((T_PORT + 1000))}"

healthy() { "$TEMPORAL" operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; }

if healthy; then
  say "a Temporal server already answers on $TEMPORAL_ADDRESS: using it as it is configured (no dev server started; scripts/temporal-dev-server.json not applied)"
else
  case "$T_HOST" in
    127.* | localhost | ::1 | '[::1]') ;;
    *) die "nothing answers on TEMPORAL_ADDRESS=$TEMPORAL_ADDRESS, and a dev server is only started on loopback" ;;
  esac
  args=(server start-dev --ip "$T_HOST" --port "$T_PORT" --ui-port "$UI_PORT" --ui-disable-news-fetch
    --db-filename "$STATE_DIR/temporal.db" --namespace "$TEMPORAL_NAMESPACE" --log-level warn)
  # TaskFlow's server settings (dynamic config, SQLite pragmas): one file, which the test harness reads too.
  mapfile -t settings < <(node -e '
    const s = require(process.argv[1]);
    for (const [k, { value }] of Object.entries(s.dynamicConfig)) console.log("--dynamic-config-value\n" + k + "=" + JSON.stringify(value));
    for (const [k, { value }] of Object.entries(s.sqlitePragmas)) console.log("--sqlite-pragma\n" + k + "=" + value);
  ' "$ROOT/scripts/temporal-dev-server.json") && ((${#settings[@]})) || die "reading scripts/temporal-dev-server.json failed"
  args+=("${settings[@]}")
  for ((i = 1; i < ${#settings[@]}; i += 2)); do say "dev server setting in force: ${settings[i]}"; done
  say "starting temporal ${args[*]} (log: $STATE_DIR/temporal.log)"
  t="$(date +%s.%N)"
  # setsid: Ctrl-C reaches only this script, which then stops the app before the server.
  setsid "$TEMPORAL" "${args[@]}" >>"$STATE_DIR/temporal.log" 2>&1 </dev/null &
  TEMPORAL_PID=$!
  echo "$TEMPORAL_PID" >"$STATE_DIR/temporal.pid"
  deadline=$((SECONDS + ${TEMPORAL_START_TIMEOUT_S:-30}))
  until healthy; do
    alive "$TEMPORAL_PID" || die "temporal dev server exited during start-up; last lines of $STATE_DIR/temporal.log:
$(tail -n 15 "$STATE_DIR/temporal.log")"
    ((SECONDS < deadline)) || die "temporal dev server did not answer on $TEMPORAL_ADDRESS within ${TEMPORAL_START_TIMEOUT_S:-30}s"
    sleep 0.2
  done
  say "temporal dev server (pid $TEMPORAL_PID) answers after $(elapsed "$t")s; Web UI: http://$T_HOST:$UI_PORT"
fi

# TaskFlow's own state: the database at DATABASE_URL, else a local PostgreSQL in $DATA_DIR/postgres.
if [[ -n "${DATABASE_URL:-}" ]]; then
  say "using the database at DATABASE_URL (no local PostgreSQL started)"
else
  PG_PORT="${LOCAL_PG_PORT:-5432}"
  t="$(date +%s.%N)"
  PG_PID="$(start_postgres "$STATE_DIR/postgres" "$PG_PORT")"
  export DATABASE_URL="postgresql://taskflow@127.0.0.1:$PG_PORT/taskflow"
  ensure_database "postgresql://taskflow@127.0.0.1:$PG_PORT/postgres" taskflow
  say "local PostgreSQL (pid $PG_PID, data in $STATE_DIR/postgres) answers after $(elapsed "$t")s: DATABASE_URL=$DATABASE_URL"
fi

# TaskFlow's search attributes are registered by the app itself at start-up (the ones of
# domain/search-attributes.ts that the namespace lacks), on this server or any other.

say "starting the app: node dist/app/main.js (compiled by setup.sh from app/main.ts)"
# node directly (not through npm) so that APP_PID is the app's process itself.
setsid node dist/app/main.js </dev/null &
APP_PID=$!
set +e
wait "$APP_PID"
rc=$?
set -e
APP_PID=""
say "app exited with status $rc"
exit "$rc"
