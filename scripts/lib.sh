# Shared helpers for scripts/*.sh. Source it; it sets ROOT, STATE_DIR and a few functions.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# DATA_DIR is the app's own setting (src/config.ts); relative values are taken from the repo root.
STATE_DIR="${DATA_DIR:-.data}"
case "$STATE_DIR" in /*) ;; *) STATE_DIR="$ROOT/$STATE_DIR" ;; esac
mkdir -p "$STATE_DIR"
export DATA_DIR="$STATE_DIR"
# DOCKER_SOCKET is the app's setting (src/config.ts); the docker CLI used here must ask the same engine.
if [[ -n "${DOCKER_SOCKET:-}" && -z "${DOCKER_HOST:-}" ]]; then export DOCKER_HOST="unix://$DOCKER_SOCKET"; fi

say() { printf '[%s] %s\n' "$(basename "${0:-taskflow}" .sh)" "$*" >&2 || true; }
die() { printf '[%s] ERROR: %s\n' "$(basename "${0:-taskflow}" .sh)" "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

# Seconds since an epoch reading, for timing messages.
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# The pid in a pid file, when that process is still alive (and, if given, is named $2).
live_pid() {
  local file="$1" name="${2:-}" pid
  [[ -f "$file" ]] || return 1
  pid="$(tr -dc '0-9' < "$file")"
  [[ -n "$pid" ]] && alive "$pid" || return 1
  if [[ -n "$name" ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$name" ]]; then return 1; fi
  echo "$pid"
}

# Alive and not a zombie (a child of this shell that exited stays a zombie until reaped).
alive() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
  [[ "$state" != Z ]]
}

# stop_pid PID NAME [TIMEOUT_S]: TERM, wait, then KILL. Never touches any other process.
stop_pid() {
  local pid="$1" name="$2" timeout="${3:-20}" i
  if alive "$pid"; then
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      say "$name (pid $pid) ignored TERM for ${timeout}s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true # reap it when it is our child
}

docker_reachable() { have docker && docker info >/dev/null 2>&1; }

# The dockerd that setup.sh started (recorded in $STATE_DIR/dockerd.pid), if it still runs.
our_dockerd_pid() { live_pid "$STATE_DIR/dockerd.pid" dockerd; }

# Run by test.sh/start.sh: note whether dockerd was already up, so that only a dockerd started
# during this run is stopped at the end (KEEP_DOCKERD=1 leaves it running).
note_dockerd_before_setup() {
  DOCKERD_WAS_UP=0
  if docker_reachable; then DOCKERD_WAS_UP=1; fi
}
stop_dockerd_if_started_here() {
  local pid
  trap '' PIPE # a reader of our output may be gone already (Ctrl-C on `... | tee`): keep cleaning up
  [[ "${DOCKERD_WAS_UP:-1}" == 0 && "${KEEP_DOCKERD:-0}" != 1 ]] || return 0
  pid="$(our_dockerd_pid)" || return 0
  stop_pid "$pid" dockerd 30
  rm -f "$STATE_DIR/dockerd.pid"
}

# The Temporal CLI binary recorded by setup.sh (TEMPORAL_CLI_PATH wins).
temporal_bin() {
  if [[ -n "${TEMPORAL_CLI_PATH:-}" ]]; then echo "$TEMPORAL_CLI_PATH"; return; fi
  [[ -s "$STATE_DIR/temporal-bin-path" ]] || die "no Temporal CLI recorded in $STATE_DIR/temporal-bin-path: run scripts/setup.sh"
  cat "$STATE_DIR/temporal-bin-path"
}

# ---------------------------------------------------------------- PostgreSQL (TaskFlow's own state)
# The PostgreSQL server binaries: on PATH, else Debian's /usr/lib/postgresql/<version>/bin.
pg_bindir() {
  local d
  if have pg_ctl && have initdb && have postgres; then dirname "$(command -v pg_ctl)"; return 0; fi
  for d in /usr/lib/postgresql/*/bin; do [[ -x "$d/pg_ctl" && -x "$d/initdb" ]] && { echo "$d"; return 0; }; done
  return 1
}

# initdb, pg_ctl and postgres refuse to run as root: as root they run as the postgres user (from /, since
# the caller's directory may be closed to that user; every path given them is absolute).
as_pg_user() { if [[ $EUID -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }

# start_postgres DIR PORT [SETTING=VALUE ...]: a PostgreSQL cluster in DIR (made on first use: superuser
# `taskflow`, trust authentication, reachable only on 127.0.0.1:PORT and a unix socket inside DIR), started
# and waited for. Prints the server's pid (postmaster.pid's first line); stop it with stop_pid.
start_postgres() {
  local dir="$1" port="$2" bin opts=() s
  shift 2
  bin="$(pg_bindir)" || die "no PostgreSQL server binaries (pg_ctl, initdb): run scripts/setup.sh, or set DATABASE_URL"
  mkdir -p "$dir"
  if [[ $EUID -eq 0 ]]; then chown postgres: "$dir"; fi
  chmod 0700 "$dir"
  as_pg_user test -w "$dir" || die "the postgres user cannot write $dir (a parent directory is closed to it): make the path traversable, or set DATABASE_URL"
  if [[ ! -s "$dir/PG_VERSION" ]]; then
    as_pg_user "$bin/initdb" -D "$dir" -U taskflow --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir.initdb.log" 2>&1 \
      || die "initdb failed: $(tail -n 5 "$dir.initdb.log")"
    rm -f "$dir.initdb.log"
  fi
  for s in "listen_addresses=127.0.0.1" "port=$port" "unix_socket_directories=$dir" "$@"; do opts+=(-c "$s"); done
  as_pg_user "$bin/pg_ctl" start -D "$dir" -w -t 60 -l "$dir/server.log" -o "${opts[*]}" >/dev/null \
    || die "PostgreSQL did not start; last lines of $dir/server.log:
$(tail -n 15 "$dir/server.log" 2>/dev/null)"
  head -n 1 "$dir/postmaster.pid"
}

# ensure_database URL NAME: creates database NAME on the server of URL (any database of it) when missing.
ensure_database() {
  local url="$1" name="$2"
  if [[ "$(psql "$url" -XtAc "SELECT 1 FROM pg_database WHERE datname = '$name'")" != 1 ]]; then
    psql "$url" -Xqc "CREATE DATABASE \"$name\"" || die "could not create database $name"
  fi
}

# A throwaway PostgreSQL for a test or bench run (durability off: it is deleted at the end). Sets
# THROWAWAY_PG_PID and THROWAWAY_PG_DIR, exports TASKFLOW_TEST_PG_URL (its maintenance database: the
# suites make their own databases on it, test/helpers/database.ts). stop_throwaway_postgres ends it.
start_throwaway_postgres() {
  local port
  THROWAWAY_PG_DIR="$(mktemp -d /tmp/taskflow-test-pg.XXXXXX)"
  port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
  THROWAWAY_PG_PID="$(start_postgres "$THROWAWAY_PG_DIR" "$port" fsync=off synchronous_commit=off full_page_writes=off max_connections=300)"
  export TASKFLOW_TEST_PG_URL="postgresql://taskflow@127.0.0.1:$port/postgres"
  say "throwaway PostgreSQL (pid $THROWAWAY_PG_PID) on 127.0.0.1:$port"
}
stop_throwaway_postgres() {
  [[ -n "${THROWAWAY_PG_PID:-}" ]] && stop_pid "$THROWAWAY_PG_PID" postgres 30
  [[ -n "${THROWAWAY_PG_DIR:-}" ]] && rm -rf "$THROWAWAY_PG_DIR"
  THROWAWAY_PG_PID="" THROWAWAY_PG_DIR=""
}
