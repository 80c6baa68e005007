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
