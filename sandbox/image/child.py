"""TaskFlow sandbox child: loads one user task file and calls its handler, one payload at a time.

Started by the agent with `child.py <result-fd> <control-fd> [<layer-path>]`; a dependency layer
(the handler's packages, mounted read-only) goes at the end of sys.path, after the stdlib, so a
package can never shadow a stdlib module (the child runs with -I: PYTHONPATH would be ignored). Before anything else it installs
its own seccomp filter (syscall_filter.py): the kernel (gVisor's) then ends this process with
SIGSYS on any attempt to start a process, open a network socket, trace or signal another process,
however the attempt is made. Before any user code runs, an
audit hook is installed that blocks (and reports to the agent) process spawning, signals,
ctypes, network use (creating an internet socket only fails, quietly, as on a host with no
network: see _no_network), writes outside /tmp and reads of other processes' /proc entries (however
the path gets there: symlinks, /proc/self/fd, a directory descriptor). The container is the real
boundary (the agent runs under another uid); the hook makes attempts visible and fails them early.
"""
import asyncio
import base64
import errno
import inspect
import io
import json
import linecache
import os
import resource
import sys
import threading
import traceback
import types

HERE = os.path.dirname(os.path.abspath(__file__))
SETUP_FAILED = 78  # exit status the agent reads as "the sandbox could not be set up" (no user code ran)
RESULT_FD = int(sys.argv[1])
CONTROL_FD = int(sys.argv[2])
LAYER_PATH = sys.argv[3] if len(sys.argv) > 3 else None
_write_lock = threading.Lock()
_hook_state = threading.local()

BLOCKED_EVENTS = {
    "subprocess.Popen": "spawns a process",
    "os.system": "runs a shell command",
    "os.exec": "replaces the process image",
    "os.posix_spawn": "spawns a process",
    "os.spawn": "spawns a process",
    "os.fork": "forks the process",
    "os.forkpty": "forks the process",
    "pty.spawn": "spawns a process",
    "os.kill": "sends a signal",
    "os.killpg": "sends a signal",
    "signal.pthread_kill": "sends a signal",
    "ctypes.dlopen": "loads native code",
    "ctypes.dlsym": "looks up native code",
    "ctypes.call_function": "calls native code",
    "ctypes.cdata": "touches raw memory",
    "ctypes.addressof": "touches raw memory",
    "ctypes.string_at": "reads raw memory",
    "socket.connect": "opens a network connection",
    "socket.bind": "listens on the network",
    "socket.sendto": "sends network traffic",
    "socket.sendmsg": "sends network traffic",
    "socket.getaddrinfo": "resolves a host name",
    "socket.gethostbyname": "resolves a host name",
    "socket.gethostbyaddr": "resolves a host name",
    "os.setuid": "changes identity",
    "os.chroot": "changes root",
    "sys.remote_exec": "attaches to a process",
}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class CountingWriter(io.RawIOBase):
    """stdout/stderr that count what they wrote, so the agent knows how much output to wait for."""

    written = [0, 0, 0]

    def __init__(self, fd):
        super().__init__()
        self.fd = fd

    def writable(self):
        return True

    def fileno(self):
        return self.fd

    def write(self, data):
        n = os.write(self.fd, data)
        CountingWriter.written[self.fd] += n
        return n


def install_streams():
    for fd, name in ((1, "stdout"), (2, "stderr")):
        stream = io.TextIOWrapper(io.BufferedWriter(CountingWriter(fd)), encoding="utf-8", errors="backslashreplace")
        setattr(sys, name, stream)
        setattr(sys, "__%s__" % name, stream)


def flush_output():
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - user code may have replaced or closed them
            pass


_last_cpu = [0.0]


def usage_fields():
    """CPU ms since the previous frame and peak RSS, for the agent's metrics."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu = ru.ru_utime + ru.ru_stime
    delta = int((cpu - _last_cpu[0]) * 1000)
    _last_cpu[0] = cpu
    return delta, ru.ru_maxrss


def send(frame):
    flush_output()
    frame["cpu_ms"], frame["maxrss_kib"] = usage_fields()
    frame["out"] = CountingWriter.written[1:]
    data = (json.dumps(frame, separators=(",", ":"), allow_nan=False) + "\n").encode()
    with _write_lock:
        view = memoryview(data)
        while view:
            view = view[os.write(RESULT_FD, view):]


def _path_of(arg):
    if isinstance(arg, bytes):
        return arg.decode("utf-8", "replace")
    if isinstance(arg, str):
        return arg
    return None  # a descriptor number or path-like we did not expect: judged by the kernel


def _verdict(event, args):
    """Why `event` is forbidden, or None when it is allowed."""
    if event in BLOCKED_EVENTS:
        return BLOCKED_EVENTS[event]
    if event == "socket.__new__":
        import socket

        family = args[1] if len(args) > 1 else None
        if family not in (socket.AF_UNIX, -1):
            return "creates a network socket"
        return None
    if event in ("open", "os.listdir", "os.scandir"):
        path = _path_of(args[0]) if args else None
        if path is None:
            return None
        norm = _resolved(path)
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        mode = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
        writing = bool(flags & WRITE_FLAGS) or any(c in mode for c in "wax+")
        if writing and not (norm == "/tmp" or norm.startswith("/tmp/")):
            return "writes outside /tmp"
        if norm.startswith("/proc/"):
            part = norm.split("/")[2]
            if part.isdigit() and int(part) != os.getpid():
                return "reads another process's /proc entry"
        return None
    return None


def _resolved(path):
    """Where `path` leads, symlinks followed: those a handler plants in /tmp, /proc's own
    (/proc/self/fd/N naming a directory, /proc/self/cwd) and /dev's (/dev/fd -> /proc/self/fd). Not
    under /usr, which the image made without links out of it, nor under the dependency layer, which
    the host refuses to mount if it holds a link (sandbox/index.ts, checkLayer): imports cost no
    extra system calls (a realpath per file took ~20% of numpy's import)."""
    norm = os.path.normpath(path if path.startswith("/") else os.path.join(os.getcwd(), path))
    if not norm.startswith("/usr/") and not (LAYER_PATH and norm.startswith(LAYER_PATH + "/")):
        norm = os.path.realpath(norm)
    return norm


_os_open = os.open


def open_at(path, flags, mode=0o777, *, dir_fd=None):
    """os.open, whose audit event leaves out `dir_fd`: a path relative to a directory descriptor is
    judged where it leads (os.open("fd/0", dir_fd=<a descriptor of /proc/1>) is a read of /proc/1)."""
    if dir_fd is not None:
        try:
            rel = os.fsdecode(path)
            base = os.readlink("/proc/self/fd/%d" % dir_fd)
        except (OSError, TypeError, ValueError, OverflowError):
            rel = base = None  # not a path or not a descriptor: the call below fails as it would have
        if base is not None and not rel.startswith("/"):
            sys.audit("open", os.path.join(base, rel), None, flags)
    return _os_open(path, flags, mode, dir_fd=dir_fd)


def _no_network(event, args):
    """The OSError a host without a network gives for creating an internet socket (AF_INET,
    AF_INET6), or None. Raised quietly, before any system call: code that probes for a network at
    import time (urllib3 creates an IPv6 socket and binds it to ::1) learns there is none and goes
    on, and nothing reaches the kernel's filters. Using the network (resolving, connecting, sending,
    binding) stays forbidden and reported; a socket of the default family (-1 here: the hook cannot
    tell it from a socket wrapped around a descriptor) is judged by the kernel as before."""
    if event != "socket.__new__" or len(args) < 2:
        return None
    import socket

    if args[1] in (socket.AF_INET, socket.AF_INET6):
        return OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))
    return None


def audit(event, args):
    if getattr(_hook_state, "busy", False):
        return
    _hook_state.busy = True
    try:
        quiet = _no_network(event, args)
        if quiet is not None:
            raise quiet
        why = _verdict(event, args)
        if why is None:
            return
        detail = "%s %s" % (why, repr(args)[:200])
        try:
            send({"op": "event", "event": event, "detail": detail})
        except OSError:
            pass
    finally:
        _hook_state.busy = False
    raise PermissionError("TaskFlow sandbox: %s is forbidden (%s)" % (event, why))


def error_of(exc, code=None):
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith("/opt/taskflow/"):
        tb = tb.tb_next  # our own frames say nothing to the user
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    out = {"type": type(exc).__name__, "message": str(exc)[:2000], "traceback": "\n".join(text.splitlines()[-30:])[-4000:]}
    if code:
        out["code"] = code
    return out


def contract_error(code, message):
    return {"type": "ContractError", "code": code, "message": message}


def check_contract(module):
    handler = module.__dict__.get("handler")
    if handler is None:
        return contract_error("handler_missing", "the module defines no top-level `handler`")
    if not callable(handler):
        return contract_error("handler_not_function", "`handler` is a %s, not a function" % type(handler).__name__)
    try:
        sig = inspect.signature(handler)
    except (TypeError, ValueError):
        return contract_error("handler_arity", "the signature of `handler` cannot be read")
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required_pos = [p for p in positional if p.default is p.empty]
    required_kw = [p for p in params if p.kind == p.KEYWORD_ONLY and p.default is p.empty]
    if len(required_pos) != 1 or required_kw:
        return contract_error(
            "handler_arity", "`handler` must take exactly one parameter (payload); its signature is %s" % sig
        )
    return None


def reply(nonce, value, cap):
    """The result frame of one call: the handler's value as JSON, or why it cannot be one."""
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        send({"op": "result", "nonce": nonce, "status": "error",
              "error": {"type": "NonJSONResult", "message": "handler returned a value that is not JSON: %s" % exc}})
        return
    if len(encoded) > cap:
        send({"op": "result", "nonce": nonce, "status": "error",
              "error": {"type": "ResultTooLarge", "message": "result is %d bytes, the cap is %d" % (len(encoded), cap)}})
        return
    flush_output()
    cpu, rss = usage_fields()
    with _write_lock:
        out, err = CountingWriter.written[1:]
        head = '{"op":"result","nonce":%s,"status":"ok","cpu_ms":%d,"maxrss_kib":%d,"out":[%d,%d],"result":' % (
            json.dumps(nonce), cpu, rss, out, err)
        data = (head + encoded + "}\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(RESULT_FD, view):]


class ChildLoop:
    """Reads the control pipe and runs what it asks for. A module whose handler is an `async def` gets
    one event loop, living for the child's whole life: the handler's calls are tasks on it, so what a
    call leaves running lives on (frozen by the agent between runs), and a call costs no loop start-up. A plain `def`
    handler is called straight from a blocking read, as before, with no loop running, so asyncio.run()
    and get_event_loop().run_until_complete() work in it (and at import time).

    The split is about system calls, each of them trapped under gVisor: a blocking read wakes cheaper
    than a loop iteration (epoll_wait plus a clock read), and Python 3.11's asyncio calls getpid()
    whenever a loop is marked running or not."""

    def __init__(self):
        # Both loops are made before the audit hook, so their self-pipe socketpairs are allowed.
        self.loop = asyncio.new_event_loop()
        self.idle_loop = asyncio.new_event_loop()  # the current loop synchronous user code sees
        asyncio.set_event_loop(self.idle_loop)
        self.buf = bytearray()
        self.handler = None
        self.handler_is_async = False
        self.hooked = False
        self.closing = False
        self.marked = False  # whether asyncio sees self.loop as running

    def run(self):
        while not self.closing:
            if not self.handler_is_async:
                self.on_control()  # blocks in read()
                continue
            self.loop.add_reader(CONTROL_FD, self.on_control)
            self.marked = True  # run_forever marks it
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_forever()  # until EOF, or a load of a plain `def` handler
            except BaseException:  # noqa: BLE001 - a background task's SystemExit must not end the child
                pass
            finally:
                self.loop.remove_reader(CONTROL_FD)
                self.marked = False
                asyncio.set_event_loop(self.idle_loop)

    def on_control(self):
        # 64 KiB: below malloc's mmap threshold (an mmap/munmap per read is two more trapped syscalls).
        data = os.read(CONTROL_FD, 65536)
        if not data:
            self.closing = True
            self.loop.stop()
            return
        self.buf += data
        while True:
            nl = self.buf.find(b"\n")
            if nl < 0:
                break
            msg = json.loads(bytes(self.buf[:nl]))
            del self.buf[: nl + 1]
            op = msg.get("op")
            nonce = str(msg.get("nonce", ""))
            if op == "load":
                self.load(msg, nonce)
            elif op == "call":
                self.call(msg, nonce)
        if self.marked and not self.handler_is_async:
            self.loop.stop()

    def mark_running(self, running):
        if running != self.marked:
            asyncio.events._set_running_loop(self.loop if running else None)
            self.marked = running

    def outside_loop(self, fn):
        """Synchronous user code: shown no running loop and an idle current loop (again, should an
        asyncio.run() in the call before have unset it)."""
        if not self.marked:
            asyncio.set_event_loop(self.idle_loop)
            return fn()
        self.mark_running(False)
        asyncio.set_event_loop(self.idle_loop)
        try:
            return fn()
        finally:
            asyncio.set_event_loop(self.loop)
            self.mark_running(True)

    def load(self, msg, nonce):
        name = os.path.basename(msg.get("file_name") or "task.py")
        filename = "/task/" + name
        # utf-8-sig: like Python reading a file, skip a leading byte order mark (compile() of a
        # str would refuse it). CRLF needs nothing: compile() reads every line end.
        source = base64.b64decode(msg["source_b64"]).decode("utf-8-sig")
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        module = types.ModuleType("task")  # fixed: a file named __main__.py must not run its main block
        module.__file__ = filename
        sys.modules[module.__name__] = module
        if not self.hooked:
            import posix

            os.open = posix.open = open_at
            sys.addaudithook(audit)
            self.hooked = True
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            code = compile(source, filename, "exec", dont_inherit=True)
            self.outside_loop(lambda: exec(code, module.__dict__))
        except BaseException as exc:  # noqa: BLE001 - SystemExit at import is a load failure too
            send({"op": "load_error", "nonce": nonce, "error": error_of(exc, "import_failed")})
            return
        problem = check_contract(module)
        if problem:
            send({"op": "load_error", "nonce": nonce, "error": problem})
            return
        self.handler = module.__dict__["handler"]
        self.handler_is_async = inspect.iscoroutinefunction(self.handler)
        # How far loading raised this process's peak memory (its imports: a layer's native libraries
        # count here, file-backed pages included under gVisor), so the host can tell it from what runs leave.
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        send({"op": "loaded", "nonce": nonce, "load_kib": max(0, grown)})

    def call(self, msg, nonce):
        if self.handler is None:
            send({"op": "result", "nonce": nonce, "status": "error", "error": contract_error("not_loaded", "no module loaded")})
            return
        cap = int(msg.get("result_cap", 1024 * 1024))
        handler = self.handler
        try:
            if self.handler_is_async and self.marked:
                # Calling an `async def` only makes the coroutine: no user code runs until the loop steps it.
                value = handler(msg.get("payload"))
            else:
                value = self.outside_loop(lambda: handler(msg.get("payload")))
        except BaseException as exc:  # noqa: BLE001 - sys.exit in a handler is an error, not success
            send({"op": "result", "nonce": nonce, "status": "error", "error": error_of(exc)})
            return
        if not inspect.isawaitable(value):
            reply(nonce, value, cap)
        elif self.marked:
            self.loop.create_task(self.finish(nonce, value, cap))
        else:
            # An awaitable from a plain `def` handler (or the call that comes with the load): run it to the end.
            self.loop.run_until_complete(self.finish(nonce, value, cap))

    async def finish(self, nonce, awaitable, cap):
        try:
            value = await awaitable
        except BaseException as exc:  # noqa: BLE001 - cancellation and sys.exit are the handler's errors too
            send({"op": "result", "nonce": nonce, "status": "error", "error": error_of(exc)})
            return
        reply(nonce, value, cap)


def install_syscall_filter():
    """Fail closed: without the filter no user code runs."""
    sys.path.insert(0, HERE)
    try:
        import syscall_filter

        syscall_filter.install(os.path.join(HERE, "syscall-table.json"))
    except Exception as exc:  # noqa: BLE001 - any failure here means "do not go on"
        os.write(2, ("taskflow child: cannot install the seccomp filter: %r\n" % (exc,)).encode())
        os._exit(SETUP_FAILED)
    finally:
        del sys.path[0]


def main():
    install_syscall_filter()
    if LAYER_PATH:
        sys.path.append(LAYER_PATH)
    child = ChildLoop()
    install_streams()
    usage_fields()  # start counting from here: our own start-up is not the handler's cost
    child.run()


if __name__ == "__main__":
    main()
