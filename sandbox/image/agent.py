"""TaskFlow sandbox agent: PID 1 inside every sandbox container.

The host talks to it over the container's stdin/stdout. User code never runs in this process:
it runs in a child interpreter (child.py) whose stdout/stderr are pipes this agent drains and
caps, and whose only way to report is a private pipe. Every line the agent writes to stdout is
authenticated with an HMAC keyed by a secret the host sends first, before any user code
exists, so whatever the handler prints or writes to any descriptor cannot pass for a report.
"""
import hashlib
import hmac
import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time

CHILD = "/opt/taskflow/child.py"
CHECKER = "/opt/taskflow/checker.py"
PYTHON = sys.executable
CHILD_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
MAX_REQUEST_BYTES = 16 * 1024 * 1024

_out_lock = threading.Lock()
_key = b""


def make_undumpable():
    """Same-uid processes may not read our memory or open /proc/1/fd/* once we are not dumpable."""
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
        self.reset(64 * 1024)

    def reset(self, cap):
        with self.lock:
            self.cap = cap
            self.buf = bytearray()
            self.total = 0

    def add(self, data):
        with self.lock:
            self.total += len(data)
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
    """One child interpreter. Frames from it arrive on a queue; a line longer than the cap is
    replaced by an `oversize` marker so a huge result cannot exhaust the agent."""

    def __init__(self, stdout_tail, stderr_tail, line_cap):
        res_r, res_w = os.pipe()
        ctl_r, ctl_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.proc = subprocess.Popen(
            [PYTHON, "-I", "-S", CHILD, str(res_w), str(ctl_r)],
            stdin=subprocess.DEVNULL,
            stdout=out_w,
            stderr=err_w,
            pass_fds=(res_w, ctl_r),
            env=CHILD_ENV,
            cwd="/tmp",
            start_new_session=True,
            close_fds=True,
        )
        for fd in (res_w, ctl_r, out_w, err_w):
            os.close(fd)
        self.ctl = ctl_w
        self.frames = queue.Queue()
        self.loaded_sha = None
        self.reported_peak = 0
        self.out_fds = (out_r, err_r)
        self.line_cap = line_cap
        threading.Thread(target=self._read_frames, args=(res_r,), daemon=True).start()
        threading.Thread(target=drain, args=(out_r, stdout_tail), daemon=True).start()
        threading.Thread(target=drain, args=(err_r, stderr_tail), daemon=True).start()

    def _read_frames(self, fd):
        buf = bytearray()
        discarding = False
        while True:
            try:
                data = os.read(fd, 1 << 20)
            except OSError:
                data = b""
            if not data:
                self.frames.put(None)
                os.close(fd)
                return
            buf += data
            while True:
                nl = buf.find(b"\n")
                if nl < 0:
                    if len(buf) > self.line_cap and not discarding:
                        discarding = True
                        self.frames.put({"op": "oversize"})
                    if discarding:
                        buf.clear()
                    break
                line = bytes(buf[:nl])
                del buf[: nl + 1]
                if discarding:
                    discarding = False
                    continue
                if len(line) > self.line_cap:
                    self.frames.put({"op": "oversize"})
                    continue
                try:
                    self.frames.put(json.loads(line))
                except ValueError:
                    self.frames.put({"op": "garbage"})

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
        return self.proc.poll() is None

    def usage(self):
        """CPU ms and peak RSS KiB of the child, read by us from /proc (not reported by it)."""
        cpu_ms, peak = 0, 0
        pid = self.proc.pid
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks = os.sysconf("SC_CLK_TCK")
            cpu_ms = int((int(fields[11]) + int(fields[12])) * 1000 / ticks)
        except (OSError, ValueError, IndexError):
            pass
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith(("VmHWM:", "VmRSS:")):
                        peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        # gVisor has no VmHWM; the child's own ru_maxrss (it can only lie about itself) fills in.
        return cpu_ms, max(peak, self.reported_peak)

    def settle_output(self, limit_s=0.05):
        """Give the drain threads a moment to read what the child flushed before it answered."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            try:
                ready, _, _ = select.select(list(self.out_fds), [], [], 0)
            except (OSError, ValueError):
                return
            if not ready:
                return
            time.sleep(0.002)

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
        try:
            os.close(self.ctl)
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


def count_processes():
    try:
        return sum(1 for n in os.listdir("/proc") if n.isdigit())
    except OSError:
        return -1


class Session:
    def __init__(self):
        self.stdout_tail = TailBuffer()
        self.stderr_tail = TailBuffer()
        self.child = None
        self.line_cap = 1024 * 1024 + 4096
        self.spawn()

    def spawn(self):
        self.child = Child(self.stdout_tail, self.stderr_tail, self.line_cap)

    def respawn(self):
        if self.child is not None:
            self.child.kill()
        self.spawn()

    def wait_frame(self, deadline, events, payload_index):
        """Next result frame from the child, collecting forbidden-event frames on the way.
        Returns None on timeout, {"op": "eof"} when the child is gone."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                frame = self.child.frames.get(timeout=left)
            except queue.Empty:
                return None
            if frame is None:
                self.child.proc.wait()
                return {"op": "eof"}
            if isinstance(frame, dict) and isinstance(frame.get("maxrss_kib"), int):
                self.child.reported_peak = max(self.child.reported_peak, frame["maxrss_kib"])
            if isinstance(frame, dict) and frame.get("op") == "event":
                if len(events) < 100:
                    events.append(
                        {
                            "event": str(frame.get("event"))[:100],
                            "detail": str(frame.get("detail"))[:300],
                            "payloadIndex": payload_index,
                        }
                    )
                continue
            return frame

    def load(self, req, timeout_s, events):
        """Loads the source into the child (unless it already holds this sha) → load outcome."""
        if self.child.loaded_sha is not None and self.child.loaded_sha == req.get("sha") and self.child.alive():
            return {"status": "ok", "wallMs": 0}
        if self.child.loaded_sha is not None or not self.child.alive():
            self.respawn()
        t0 = time.monotonic()
        self.child.send({"op": "load", "source_b64": req["source_b64"], "file_name": req["file_name"]})
        frame = self.wait_frame(t0 + timeout_s, events, None)
        wall = int((time.monotonic() - t0) * 1000)
        if frame is None:
            self.respawn()
            return {"status": "timeout", "wallMs": wall,
                    "error": {"type": "Timeout", "message": "loading the module took longer than %d ms" % int(timeout_s * 1000)}}
        if frame.get("op") == "loaded":
            self.child.loaded_sha = req.get("sha")
            return {"status": "ok", "wallMs": wall}
        if frame.get("op") == "load_error":
            err = sanitize_error(frame.get("error"))
            self.respawn()
            return {"status": "error", "wallMs": wall, "error": err}
        desc = self.child.exit_description() if frame.get("op") == "eof" else "unexpected frame from child"
        self.respawn()
        return {"status": "error", "wallMs": wall, "error": {"type": "ChildExited", "message": "while loading: " + desc}}

    def run(self, req):
        rid = req.get("id")
        payloads = req.get("payloads") or []
        timeout_s = max(0.05, req.get("payload_timeout_ms", 5000) / 1000.0)
        result_cap = int(req.get("result_cap", 1024 * 1024))
        output_cap = int(req.get("output_cap", 64 * 1024))
        self.stdout_tail.reset(output_cap)
        self.stderr_tail.reset(output_cap)
        events = []
        cpu_ms, peak = 0, 0
        self.child.line_cap = result_cap + 4096

        def account():
            nonlocal cpu_ms, peak
            c, p = self.child.usage()
            cpu_ms += c
            peak = max(peak, p)

        load = self.load(req, timeout_s, events)
        emit({"type": "loaded", "id": rid, "load": load, "forbidden": events})
        results = []
        for i, payload in enumerate(payloads):
            if load["status"] != "ok":
                results.append({"index": i, "status": "error", "wallMs": 0,
                                "error": {"type": "LoadFailed", "message": "the module did not load"}})
                continue
            if not self.child.alive() or self.child.loaded_sha != req.get("sha"):
                # A previous payload killed the child: give the next payload a fresh one.
                self.respawn()
                again = self.load(req, timeout_s, events)
                if again["status"] != "ok":
                    results.append({"index": i, "status": "error", "wallMs": again["wallMs"], "error": again.get("error")})
                    continue
            t0 = time.monotonic()
            self.child.send({"op": "call", "payload": payload, "result_cap": result_cap})
            frame = self.wait_frame(t0 + timeout_s, events, i)
            wall = int((time.monotonic() - t0) * 1000)
            if frame is None:
                account()
                self.child.kill()
                results.append({"index": i, "status": "timeout", "wallMs": wall,
                                "error": {"type": "Timeout", "message": "handler ran longer than %d ms" % int(timeout_s * 1000)}})
            elif frame.get("op") == "result" and frame.get("status") == "ok":
                results.append({"index": i, "status": "ok", "wallMs": wall, "result": frame.get("result")})
            elif frame.get("op") == "result":
                results.append({"index": i, "status": "error", "wallMs": wall, "error": sanitize_error(frame.get("error"))})
            elif frame.get("op") == "oversize":
                account()
                self.child.kill()
                results.append({"index": i, "status": "error", "wallMs": wall,
                                "error": {"type": "ResultTooLarge", "message": "result exceeds %d bytes" % result_cap}})
            elif frame.get("op") == "eof":
                results.append({"index": i, "status": "error", "wallMs": wall,
                                "error": {"type": "ChildExited", "message": "handler ended the process: " + self.child.exit_description()}})
            else:
                account()
                self.child.kill()
                results.append({"index": i, "status": "error", "wallMs": wall,
                                "error": {"type": "ProtocolError", "message": "unexpected frame from child"}})
            # Each result leaves as soon as it exists, so a later crash of the container loses none.
            emit({"type": "progress", "id": rid, "completed": i + 1, "total": len(payloads), "payload": results[-1],
                  "forbidden": events})
        if self.child.alive():
            account()
            self.child.settle_output()
        out, out_total, out_trunc = self.stdout_tail.snapshot()
        err, err_total, err_trunc = self.stderr_tail.snapshot()
        emit({
            "type": "run_done", "id": rid, "load": load, "payloads": results, "forbidden": events,
            "stdoutTail": out, "stderrTail": err, "stdoutBytes": out_total, "stderrBytes": err_total,
            "outputTruncated": out_trunc or err_trunc, "cpuMs": cpu_ms, "peakMemoryKiB": peak,
            "processes": count_processes(),
        })

    def check(self, req):
        rid = req.get("id")
        timeout_s = max(0.1, req.get("timeout_ms", 10000) / 1000.0)
        body = json.dumps({k: req[k] for k in ("source_b64", "file_name", "max_bytes", "policy") if k in req}).encode()
        try:
            proc = subprocess.run([PYTHON, "-I", "-S", CHECKER], input=body, capture_output=True,
                                  timeout=timeout_s, env=CHILD_ENV, cwd="/tmp")
        except subprocess.TimeoutExpired:
            emit({"type": "check_done", "id": rid, "error": "checker timed out"})
            return
        try:
            report = json.loads(proc.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
        except (ValueError, IndexError):
            emit({"type": "check_done", "id": rid,
                  "error": "checker failed (status %s): %s" % (proc.returncode, proc.stderr[-2000:].decode("utf-8", "replace"))})
            return
        emit({"type": "check_done", "id": rid, "report": report})


def sanitize_error(err):
    if not isinstance(err, dict):
        return {"type": "UnknownError", "message": "the child sent no error details"}
    out = {"type": str(err.get("type", "Error"))[:200], "message": str(err.get("message", ""))[:2000]}
    if err.get("traceback"):
        out["traceback"] = str(err["traceback"])[-4000:]
    if err.get("code"):
        out["code"] = str(err["code"])[:64]
    return out


def read_line(stream):
    line = stream.readline(MAX_REQUEST_BYTES)
    if not line:
        return None
    return json.loads(line)


def main():
    global _key
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    undumpable = make_undumpable()
    stdin = sys.stdin.buffer
    hello = read_line(stdin)
    if not hello or hello.get("type") != "hello":
        log("expected hello")
        return 2
    _key = bytes.fromhex(hello["key"])
    session = Session()
    emit({"type": "ready", "undumpable": undumpable, "python": sys.version.split()[0]})
    while True:
        try:
            req = read_line(stdin)
        except ValueError:
            log("bad request line")
            continue
        if req is None:
            return 0
        kind = req.get("type")
        if kind == "run":
            session.run(req)
        elif kind == "check":
            session.check(req)
        elif kind == "ping":
            emit({"type": "pong", "id": req.get("id")})
        else:
            log("unknown request type %r" % kind)


if __name__ == "__main__":
    sys.exit(main())
