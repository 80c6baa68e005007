"""TaskFlow sandbox agent: PID 1 inside every sandbox container.

The host talks to it over the container's stdin/stdout. User code never runs in this process:
it runs in a child interpreter (child.py) whose stdout/stderr are pipes this agent drains and
caps, and whose only way to report is a private pipe. Every line the agent writes to stdout is
authenticated with an HMAC keyed by a secret the host sends first, before any user code
exists, so whatever the handler prints or writes to any descriptor cannot pass for a report.
The agent runs under a uid of its own and its children under another (drop_root), so a handler
cannot open the agent's descriptors through /proc/1/fd.
A checker container's agent (hello role "checker") runs no user code at all: it serves static
checks (class Checker).
"""
import hashlib
import hmac
import itertools
import json
import math
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time

CHILD = "/opt/taskflow/child.py"
CHECKER = "/opt/taskflow/checker.py"
PYTHON = sys.executable
# One thread for the numeric libraries a dependency layer may bring (OpenBLAS, OpenMP, MKL): they
# start one per core, and gVisor shows the host's cores, not the container's CPU share.
CHILD_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
             "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
MAX_REQUEST_BYTES = 16 * 1024 * 1024
CHILD_SETUP_FAILED = 78  # child.py's exit status when it could not install its seccomp filter
# Two identities: the agent's own, and that of every process it starts (handler children, checkers).
# gVisor lets any process of the agent's uid open /proc/1/fd/* (the host's request stream, the report
# channel), PR_SET_DUMPABLE notwithstanding; another uid gets EACCES.
AGENT_UID = 65533
CHILD_UID = 65534  # nobody
CHILD_IDENTITY = {"user": CHILD_UID, "group": CHILD_UID, "extra_groups": []}
# All the agent keeps of root (spec.ts grants no more): starting children as CHILD_UID, and killing them.
CAP_KILL, CAP_SETGID, CAP_SETUID = 5, 6, 7
AGENT_CAPS = (1 << CAP_KILL) | (1 << CAP_SETGID) | (1 << CAP_SETUID)
# Results leave as JSON that JavaScript reads into doubles: integers beyond this would change silently.
MAX_SAFE_INTEGER = 2**53 - 1
# A result line can hold an unsafe number only if it has a 16-digit run, a 3-digit exponent or
# NaN/Infinity (json.loads reads those); only such lines are walked.
UNSAFE_HINT = re.compile(rb"\d{16}|[eE][+-]?\d{3}|NaN|Infinity")

_out_lock = threading.Lock()
_key = b""
# Request nonces: unpredictable to the child (it cannot read this process's memory), and no getrandom()
# per request (every system call is trapped under gVisor).
_nonce_seed = os.urandom(32)
_nonce_count = itertools.count()


def new_nonce():
    return hmac.new(_nonce_seed, b"%d" % next(_nonce_count), hashlib.sha256).hexdigest()[:32]


def drop_root():
    """The container starts this process as root holding only AGENT_CAPS. Become AGENT_UID at once,
    keeping those (KEEPCAPS, then capset: a uid change clears the effective set). Children get
    CHILD_UID and no capabilities (a non-root execve keeps none). Raises unless all of it holds."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_KEEPCAPS = 8
    SYS_CAPSET = 126  # x86_64, the only architecture the image is built for
    if os.getuid() != 0 or libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0:
        raise OSError("the agent must start as root with CAP_SETUID (uid %d)" % os.getuid())
    os.setgroups([])
    os.setresgid(AGENT_UID, AGENT_UID, AGENT_UID)
    os.setresuid(AGENT_UID, AGENT_UID, AGENT_UID)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    header = Header(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (Data * 2)(Data(AGENT_CAPS, AGENT_CAPS, 0), Data(0, 0, 0))
    if libc.syscall(SYS_CAPSET, ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
    if os.getresuid() != (AGENT_UID,) * 3 or os.getresgid() != (AGENT_UID,) * 3 or os.getgroups():
        raise OSError("the agent's identity did not change")


def make_undumpable():
    """Defence in depth (not honoured for /proc/1/fd by this gVisor: the separate uid is what holds)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_DUMPABLE = 4
        return libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except Exception:  # noqa: BLE001 - defence in depth; the HMAC is what the host relies on
        return False


def emit(frame):
    """Write one authenticated frame: `<hmac-hex> <json>\n`."""
    body = json.dumps(frame, separators=(",", ":"), ensure_ascii=True).encode()
    tag = hmac.new(_key, body, hashlib.sha256).hexdigest().encode()
    with _out_lock:
        sys.stdout.buffer.write(tag + b" " + body + b"\n")
        sys.stdout.buffer.flush()


def log(msg):
    sys.stderr.write("agent: %s\n" % msg)
    sys.stderr.flush()


class TailBuffer:
    """Keeps the last `cap` bytes of a stream and counts everything that went through."""

    def __init__(self):
        self.lock = threading.Lock()
        self.total_all = 0
        self.reset(64 * 1024)

    def reset(self, cap):
        with self.lock:
            self.cap = cap
            self.buf = bytearray()
            self.total = 0

    def restart(self):
        """A new child: its byte counts start from zero."""
        with self.lock:
            self.total_all = 0

    def add(self, data):
        with self.lock:
            self.total += len(data)
            self.total_all += len(data)
            self.buf += data
            if len(self.buf) > self.cap:
                del self.buf[: len(self.buf) - self.cap]

    def snapshot(self):
        with self.lock:
            return bytes(self.buf).decode("utf-8", "replace"), self.total, self.total > self.cap


def drain(fd, sink):
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            os.close(fd)
            return
        sink.add(data)


class Child:
    """One child interpreter. Its frames are read synchronously from the result pipe (no thread
    hand-off on the hot path); a line longer than the cap becomes an `oversize` marker so a huge
    result cannot exhaust the agent. CPU and peak memory come from the child's own getrusage:
    /proc reads cost ~1 ms each under gVisor, and a child can only misstate its own numbers."""

    def __init__(self, stdout_tail, stderr_tail, layer_path=None):
        res_r, res_w = os.pipe()
        ctl_r, ctl_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.proc = subprocess.Popen(
            [PYTHON, "-I", "-S", "-B", CHILD, str(res_w), str(ctl_r), *([layer_path] if layer_path else [])],
            stdin=subprocess.DEVNULL,
            stdout=out_w,
            stderr=err_w,
            pass_fds=(res_w, ctl_r),
            env=CHILD_ENV,
            cwd="/tmp",
            start_new_session=True,
            close_fds=True,
            **CHILD_IDENTITY,
        )
        for fd in (res_w, ctl_r, out_w, err_w):
            os.close(fd)
        self.ctl = ctl_w
        self.res = res_r
        self.buf = bytearray()
        self.discarding = False
        self.eof = False
        self.loaded_sha = None
        self.cpu_ms = 0
        self.peak_kib = 0
        self.printed = [0, 0]
        self.line_cap = 1024 * 1024 + 4096
        self.max_depth = 64
        self.frozen = False
        threading.Thread(target=drain, args=(out_r, stdout_tail), daemon=True).start()
        threading.Thread(target=drain, args=(err_r, stderr_tail), daemon=True).start()

    def _take_line(self):
        while True:
            nl = self.buf.find(b"\n")
            if nl < 0:
                if len(self.buf) > self.line_cap:
                    self.buf.clear()
                    if not self.discarding:
                        self.discarding = True
                        return {"op": "oversize"}
                return None
            line = bytes(self.buf[:nl])
            del self.buf[: nl + 1]
            if self.discarding:
                self.discarding = False
                continue
            if len(line) > self.line_cap:
                return {"op": "oversize"}
            try:
                frame = json.loads(line)
            except (ValueError, RecursionError):  # RecursionError: nested past what Python can parse
                frame = None
            if not isinstance(frame, dict):
                return {"op": "garbage"}
            # The child's own frames nest two levels above a result; anything deeper could break this
            # process's json.dumps/repr later. Counting brackets spares the walk for most frames.
            if line.count(b"[") + line.count(b"{") > self.max_depth + 1 and nests_deeper(frame, self.max_depth + 1):
                if frame.get("op") != "result":
                    return {"op": "garbage"}
                frame.pop("result", None)
                frame["status"] = "error"
                frame["error"] = error("ResultTooDeep", "result nests deeper than %d levels" % self.max_depth)
            # Checked here, not only where the child encodes: the handler can write its own call's frame.
            if frame.get("op") == "result" and "result" in frame and UNSAFE_HINT.search(line):
                bad = unsafe_number(frame["result"])
                if bad is not None:
                    frame.pop("result")
                    frame["status"] = "error"
                    frame["error"] = error("ResultUnsafeNumber", "result holds %s, which JSON readers such as "
                                           "JavaScript cannot hold exactly (integers must lie within ±(2**53 - 1), "
                                           "floats must be finite): return it as a string" % bad)
            return frame

    def next_frame(self, deadline):
        """The next frame; None when the deadline passes; {"op": "eof"} when the child is gone."""
        while True:
            frame = self._take_line()
            if frame is not None:
                if isinstance(frame.get("cpu_ms"), int):
                    self.cpu_ms += max(0, frame["cpu_ms"])
                out = frame.get("out")
                if isinstance(out, list) and len(out) == 2 and all(isinstance(n, int) for n in out):
                    self.printed = out
                if isinstance(frame.get("maxrss_kib"), int):
                    self.peak_kib = max(self.peak_kib, frame["maxrss_kib"])
                return frame
            if self.eof:
                return {"op": "eof"}
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.res], [], [], left)
            if not ready:
                continue
            try:
                # 64 KiB: below malloc's mmap threshold, so a read costs no mmap/munmap (syscalls, trapped under gVisor).
                data = os.read(self.res, 65536)
            except OSError:
                data = b""
            if not data:
                self.eof = True
                self.proc.wait()
            self.buf += data

    def send(self, msg):
        data = json.dumps(msg).encode() + b"\n"
        try:
            view = memoryview(data)
            while view:
                n = os.write(self.ctl, view)
                view = view[n:]
            return True
        except OSError:
            return False

    def alive(self):
        return not self.eof and self.proc.poll() is None

    def freeze(self):
        """No user code runs between runs: SIGSTOP stops every thread of the process (what a handler
        left running included) and cannot be caught or blocked; the child cannot fork, so its process
        group is all of the user's code. Two kill() calls per run, where a docker pause + unpause
        round trip took ~100 ms here."""
        if self.alive() and not self.frozen:
            try:
                os.killpg(self.proc.pid, signal.SIGSTOP)
                self.frozen = True
            except OSError:
                pass  # ended meanwhile: nothing of it runs

    def thaw(self):
        if self.frozen:
            self.frozen = False
            try:
                os.killpg(self.proc.pid, signal.SIGCONT)
            except OSError:
                pass  # gone meanwhile: the run finds it dead

    def settle_output(self, stdout_tail, stderr_tail, limit_s=0.05):
        """Wait (briefly) until the drain threads have read what the child says it printed
        before answering; output written around print() (os.write) may show up late."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if stdout_tail.total_all >= self.printed[0] and stderr_tail.total_all >= self.printed[1]:
                return
            time.sleep(0.001)

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.proc.kill()
        except OSError:
            pass
        self.proc.wait()
        for fd in (self.ctl, self.res):
            try:
                os.close(fd)
            except OSError:
                pass
        reap_orphans()

    def exit_description(self):
        code = self.proc.poll()
        if code is None:
            return "child still running"
        if code < 0:
            return "child killed by signal %s" % signal.Signals(-code).name
        return "child exited with status %d" % code


def reap_orphans():
    """As PID 1 we inherit orphans; reap them only when no Popen child of ours is alive."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def error(kind, message):
    return {"type": kind, "message": message}


def unsafe_number(value):
    """The first number in `value` that a double cannot hold exactly (described), or None. Iterative."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, float) and not math.isfinite(v):
            return repr(v)
        elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_SAFE_INTEGER:
            text = str(v)
            return "the integer %s" % (text if len(text) <= 40 else "%s... (%d digits)" % (text[:20], len(text)))
    return None


def nests_deeper(value, limit):
    """Whether `value` has containers nested more than `limit` deep (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


class Session:
    def __init__(self, layer_path=None):
        self.stdout_tail = TailBuffer()
        self.stderr_tail = TailBuffer()
        self.layer_path = layer_path  # the container's dependency layer (read-only), for every child
        self.child = None
        self.spawn()

    def spawn(self):
        self.stdout_tail.restart()
        self.stderr_tail.restart()
        self.child = Child(self.stdout_tail, self.stderr_tail, self.layer_path)

    def respawn(self):
        if self.child is not None:
            self.child.kill()
        self.spawn()

    def ended(self, events, payload_index, doing):
        """Why the child's process ended (after eof), as an error. SIGSYS is the child's own seccomp
        filter (or the container's) ending it for a forbidden system call: a forbidden event too.
        Which call it was, gVisor tells the host (sandbox/syscall-monitor.ts)."""
        code = self.child.proc.poll()
        if code == -signal.SIGSYS:
            if len(events) < 100:
                events.append({"event": "forbidden_syscall", "payloadIndex": payload_index, "pid": self.child.proc.pid,
                               "detail": "the sandbox's seccomp filter ended the handler's process (SIGSYS) %s" % doing})
            return error("ForbiddenSyscall", "the handler made a system call the sandbox forbids (its process was "
                         "ended with SIGSYS %s)" % doing)
        if code == CHILD_SETUP_FAILED:
            return error("SandboxSetupFailed", "the handler's process could not install its seccomp filter")
        return error("ChildExited", "the handler's process ended %s (%s)" % (doing, self.child.exit_description()))

    def wait_frame(self, deadline, events, payload_index, nonce):
        """Next answer to the request tagged `nonce`, collecting forbidden-event frames on the way.
        The handler shares the child's process, so it can always answer for its own call (as it
        could by returning); the fresh nonce per request stops it answering for later ones."""
        while True:
            frame = self.child.next_frame(deadline)
            if frame is None:
                return None
            if frame.get("op") not in ("event", "eof", "oversize", "garbage") and frame.get("nonce") != nonce:
                frame = {"op": "garbage"}
            if frame.get("op") == "garbage":
                # Only the child's own code writes to this pipe; anything unparsable is the
                # handler writing to descriptors it does not own.
                frame = {"op": "event", "event": "result_channel_tampering",
                         "detail": "the handler wrote to the sandbox's private result channel"}
            if frame.get("op") != "event":
                return frame
            if len(events) < 100:
                events.append({"event": str(frame.get("event"))[:100], "detail": str(frame.get("detail"))[:300],
                               "payloadIndex": payload_index})

    def load(self, req, timeout_s, events):
        """Loads the source into the child (unless it already holds this sha) → load outcome."""
        if self.child.loaded_sha is not None and self.child.loaded_sha == req.get("sha") and self.child.alive():
            return {"status": "ok", "wallMs": 0, "cached": True}
        if self.child.loaded_sha is not None or not self.child.alive():
            self.respawn()
        t0 = time.monotonic()
        nonce = new_nonce()
        self.child.send({"op": "load", "nonce": nonce, "source_b64": req["source_b64"], "file_name": req["file_name"]})
        frame = self.wait_frame(t0 + timeout_s, events, None, nonce)
        wall = int((time.monotonic() - t0) * 1000)
        if frame is not None and frame.get("op") == "loaded":
            self.child.loaded_sha = req.get("sha")
            grown = frame.get("load_kib")
            return {"status": "ok", "wallMs": wall, "memoryKiB": grown if type(grown) is int and grown >= 0 else 0}
        if frame is None:
            outcome = {"status": "timeout", "wallMs": wall,
                       "error": error("Timeout", "loading the module took longer than %d ms" % int(timeout_s * 1000))}
        elif frame.get("op") == "load_error":
            outcome = {"status": "error", "wallMs": wall, "error": sanitize_error(frame.get("error"))}
        else:
            err = (self.ended(events, None, "while loading") if frame.get("op") == "eof"
                   else error("ChildExited", "while loading: unexpected frame from child"))
            outcome = {"status": "error", "wallMs": wall, "error": err}
        self.respawn()
        return outcome

    def call(self, payload, timeout_s, result_cap, events, index):
        """One handler call → payload outcome. Kills the child when it cannot be trusted to go on."""
        t0 = time.monotonic()
        nonce = new_nonce()
        self.child.send({"op": "call", "nonce": nonce, "payload": payload, "result_cap": result_cap})
        frame = self.wait_frame(t0 + timeout_s, events, index, nonce)
        out = {"index": index, "status": "error", "wallMs": int((time.monotonic() - t0) * 1000)}
        op = frame.get("op") if frame else None
        if frame is None:
            out["status"] = "timeout"
            out["error"] = error("Timeout", "handler ran longer than %d ms" % int(timeout_s * 1000))
        elif op == "result" and frame.get("status") == "ok":
            out["status"] = "ok"
            # As text: the host parses it itself, refusing what a plain JSON.parse would change.
            out["resultJson"] = json.dumps(frame.get("result"), separators=(",", ":"), ensure_ascii=False)
        elif op == "result":
            out["error"] = sanitize_error(frame.get("error"))
        elif op == "oversize":
            out["error"] = error("ResultTooLarge", "result exceeds %d bytes" % result_cap)
        elif op == "eof":
            out["error"] = self.ended(events, index, "during the call")
        else:
            out["error"] = error("ProtocolError", "unexpected frame from child")
        if op not in ("result", "eof"):
            self.child.kill()
        return out

    def run(self, req):
        rid = req.get("id")
        payloads = req.get("payloads") or []
        timeout_s = max(0.05, req["payload_timeout_ms"] / 1000.0)
        result_cap = int(req["result_cap"])
        output_cap = int(req["output_cap"])
        self.stdout_tail.reset(output_cap)
        self.stderr_tail.reset(output_cap)
        events = []
        cpu_ms, peak = 0, 0
        self.child.thaw()
        self.child.line_cap = result_cap + 4096
        self.child.max_depth = int(req.get("result_max_depth", 64))

        def account():
            nonlocal cpu_ms, peak
            cpu_ms += self.child.cpu_ms
            peak = max(peak, self.child.peak_kib)
            self.child.cpu_ms = 0

        load = self.load(req, timeout_s, events)
        if not load.pop("cached", False):
            emit({"type": "loaded", "id": rid, "load": load, "forbidden": events})
        results = []
        for i, payload in enumerate(payloads):
            if load["status"] != "ok":
                results.append({"index": i, "status": "error", "wallMs": 0,
                                "error": error("LoadFailed", "the module did not load")})
                continue
            if i > 0 and (not self.child.alive() or self.child.loaded_sha != req.get("sha")):
                # A previous payload killed the child: give the next payload a fresh one.
                account()
                self.respawn()
                again = self.load(req, timeout_s, events)
                if again["status"] != "ok":
                    results.append({"index": i, "status": "error", "wallMs": again["wallMs"], "error": again.get("error")})
                    continue
            results.append(self.call(payload, timeout_s, result_cap, events, i))
            account()
            if i < len(payloads) - 1:
                # Each result leaves as soon as it exists, so a later crash of the container loses none.
                emit({"type": "progress", "id": rid, "completed": i + 1, "total": len(payloads),
                      "payload": results[-1], "forbidden": events})
        if not self.child.eof:
            self.child.settle_output(self.stdout_tail, self.stderr_tail)
        self.child.freeze()  # before the host hears the run is done, so idle means frozen
        out, out_total, out_trunc = self.stdout_tail.snapshot()
        err, err_total, err_trunc = self.stderr_tail.snapshot()
        emit({
            "type": "run_done", "id": rid, "load": load, "payloads": results, "forbidden": events,
            "stdoutTail": out, "stderrTail": err, "stdoutBytes": out_total, "stderrBytes": err_total,
            "outputTruncated": out_trunc or err_trunc, "cpuMs": cpu_ms, "peakMemoryKiB": peak,
        })


class Checker:
    """The static checker's side of a checker container (hello role "checker"), which serves many
    checks, one at a time. The checker only parses the upload (Python's ast), it never runs it; still,
    each check gets a checker process of its own, started ahead so that it has done its imports when
    the request comes, and once the check is over every process but this agent is killed, so nothing
    a hostile input might have set going in one check survives into the next."""

    def __init__(self):
        self.next = self.spawn()

    @staticmethod
    def spawn():
        return subprocess.Popen([PYTHON, "-I", "-S", "-B", CHECKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=CHILD_ENV, cwd="/tmp", start_new_session=True, close_fds=True,
                                **CHILD_IDENTITY)

    @staticmethod
    def sweep():
        """Kills every process but this agent, whatever its session: one pid at a time from /proc,
        because the sandbox's seccomp profile refuses kill(-1) to every process, PID 1 included.
        Repeated until none is left (one might fork while the others are being killed)."""
        me = os.getpid()
        for _ in range(100):
            others = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]
            if not others:
                return
            for pid in others:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            while True:  # as PID 1 every orphan is ours to reap
                try:
                    os.waitpid(-1, 0)
                except ChildProcessError:
                    break

    def check(self, req):
        rid = req.get("id")
        timeout_s = max(0.1, req["timeout_ms"] / 1000.0)
        body = json.dumps({k: req[k] for k in ("source_b64", "file_name", "max_bytes", "policy") if k in req}).encode()
        proc, self.next = self.next, None
        try:
            try:
                out, err = proc.communicate(body, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                emit({"type": "check_done", "id": rid, "error": "checker timed out"})
                return
            try:
                if proc.returncode != 0:
                    raise ValueError("checker exit status %d" % proc.returncode)
                report = json.loads(out.decode("utf-8", "replace").strip().splitlines()[-1])
            except (ValueError, IndexError, RecursionError):
                emit({"type": "check_done", "id": rid,
                      "error": "checker failed (status %s): %s" % (proc.returncode, err[-2000:].decode("utf-8", "replace"))})
                return
            emit({"type": "check_done", "id": rid, "report": report})
        finally:
            self.sweep()
            self.next = self.spawn()


def sanitize_error(err):
    if not isinstance(err, dict):
        return {"type": "UnknownError", "message": "the child sent no error details"}
    out = {"type": str(err.get("type", "Error"))[:200], "message": str(err.get("message", ""))[:2000]}
    if err.get("traceback"):
        out["traceback"] = str(err["traceback"])[-4000:]
    if err.get("code"):
        out["code"] = str(err["code"])[:64]
    return out


def host_int(text):
    """The host is JavaScript: an integer it writes past ±(2**53 - 1) was a double there, so it is one
    here too (the same value), and a payload that holds one comes back exact instead of refused."""
    value = int(text)
    return value if abs(value) <= MAX_SAFE_INTEGER else float(text)


def read_line(stream):
    line = stream.readline(MAX_REQUEST_BYTES)
    if not line:
        return None
    return json.loads(line, parse_int=host_int)


def main():
    global _key
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        drop_root()
    except OSError as exc:  # fail closed: no child runs beside an agent it could reach
        log("cannot take the agent's own identity: %s" % exc)
        return 2
    undumpable = make_undumpable()
    stdin = sys.stdin.buffer
    hello = read_line(stdin)
    if not hello or hello.get("type") != "hello":
        log("expected hello")
        return 2
    _key = bytes.fromhex(hello["key"])
    # A container either checks uploads (role "checker", long-lived, never runs them) or runs user code.
    role = "checker" if hello.get("role") == "checker" else "run"
    layer_path = hello.get("layer_path")
    if layer_path is not None and not (isinstance(layer_path, str) and layer_path.startswith("/")):
        log("bad layer_path")
        return 2
    worker = Checker() if role == "checker" else Session(layer_path)
    emit({"type": "ready", "role": role, "undumpable": undumpable, "uid": os.getuid(), "python": sys.version.split()[0]})
    while True:
        try:
            req = read_line(stdin)
        except (ValueError, RecursionError):
            log("bad request line")
            continue
        if req is None:
            return 0
        kind = req.get("type")
        # Limits always come with the request (the host's one definition of them): no defaults here.
        if kind == "run" and role == "run":
            worker.run(req)
        elif kind == "check" and role == "checker":
            worker.check(req)
        elif kind == "ping":
            emit({"type": "pong", "id": req.get("id")})
        else:
            log("refused request type %r (role %s)" % (kind, role))


if __name__ == "__main__":
    sys.exit(main())
