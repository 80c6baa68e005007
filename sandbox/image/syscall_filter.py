"""The child runner's own seccomp filter, installed on itself before any user code runs.

Raw BPF through ctypes (the stdlib has no seccomp API). Denied calls end the whole process with
SIGSYS: the action is TRAP, not KILL, because this gVisor (20221219) treats KILL_PROCESS as
kill-thread, so a forbidden call from a second thread would leave the process running; SIGSYS
with its default disposition ends the thread group, and changing that disposition is itself
denied. Blocking SIGSYS still lets the process live on after a denied call, which is why the host
also acts on gVisor's own record of every denial (sandbox/syscall-monitor.ts).
"""
import ctypes
import json
import os
import struct

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_NR, _ARCH, _ARG = 0, 4, 16  # offsets in struct seccomp_data; argument i's low 32 bits at 16 + 8*i
X32_SYSCALL_BIT = 0x40000000
CLONE_THREAD = 0x00010000
AF_UNIX = 1
ENOSYS = 38
SIGSYS = 31
F_SETOWN, F_SETOWN_EX = 8, 15
FIOSETOWN, SIOCSPGRP = 0x8901, 0x8902
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP = 38, 22
SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC = 1, 1

ALWAYS_DENIED = ("execve", "execveat", "fork", "vfork", "ptrace", "process_vm_readv", "process_vm_writev",
                 "pidfd_open", "pidfd_send_signal", "pidfd_getfd", "tkill", "seccomp")
SELF_ONLY = ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")  # first argument must be our pid


class _Program:
    """A tiny assembler: BPF only jumps forward, so labels are resolved once at the end."""

    def __init__(self):
        self.code, self.fixups, self.labels = [], [], {}

    def load(self, offset):
        self.code.append([_LD_W_ABS, 0, 0, offset])

    def jump(self, op, k, if_true=None, if_false=None):
        self.fixups.append((len(self.code), if_true, if_false))
        self.code.append([op, 0, 0, k])

    def ret(self, k):
        self.code.append([_RET, 0, 0, k])

    def label(self, name):
        self.labels[name] = len(self.code)

    def assemble(self):
        for at, if_true, if_false in self.fixups:
            for slot, name in ((1, if_true), (2, if_false)):
                if name is not None:
                    offset = self.labels[name] - at - 1
                    if not 0 <= offset < 256:
                        raise ValueError("BPF jump out of range")
                    self.code[at][slot] = offset
        return b"".join(struct.pack("<HBBI", *ins) for ins in self.code), len(self.code)


def build(table, pid, deny=SECCOMP_RET_TRAP):
    """The filter for process `pid`. `table` is syscall-table.json's content."""
    nr = {name: entry["nr"] for name, entry in table["syscalls"].items()}
    p = _Program()
    p.load(_ARCH)
    p.jump(_JEQ, table["auditArch"], None, "wrong_arch")
    p.load(_NR)
    p.jump(_JGE, X32_SYSCALL_BIT, "deny")
    for name in ALWAYS_DENIED:
        p.jump(_JEQ, nr[name], "deny")
    p.jump(_JEQ, nr["clone3"], "enosys")  # can't see its flags; threads fall back to clone
    for name in ("clone", "socket", "rt_sigaction", "fcntl", "ioctl", "prctl") + SELF_ONLY:
        p.jump(_JEQ, nr[name], name)
    p.ret(SECCOMP_RET_ALLOW)
    p.label("deny")
    p.ret(deny)
    p.label("enosys")
    p.ret(SECCOMP_RET_ERRNO | ENOSYS)
    p.label("wrong_arch")
    p.ret(SECCOMP_RET_KILL_PROCESS)

    def arg_check(name, arg, op, k, allow_when):
        # allow_when: the result of `arg <op> k` that allows the call.
        p.label(name)
        p.load(_ARG + 8 * arg)
        p.jump(op, k, None, name + ".false")
        p.ret(SECCOMP_RET_ALLOW if allow_when else deny)
        p.label(name + ".false")
        p.ret(deny if allow_when else SECCOMP_RET_ALLOW)

    arg_check("clone", 0, _JSET, CLONE_THREAD, True)  # threads yes, processes no
    arg_check("socket", 0, _JEQ, AF_UNIX, True)
    arg_check("rt_sigaction", 0, _JEQ, SIGSYS, False)  # nobody may catch, ignore or reset SIGSYS
    arg_check("prctl", 0, _JEQ, PR_SET_SECCOMP, False)
    for name in SELF_ONLY:
        arg_check(name, 0, _JEQ, pid, True)
    # fcntl: F_SETOWN only to ourselves, never F_SETOWN_EX (the owner hides behind a pointer).
    p.label("fcntl")
    p.load(_ARG + 8)
    p.jump(_JEQ, F_SETOWN_EX, "deny2")
    p.jump(_JEQ, F_SETOWN, None, "allow2")
    p.load(_ARG + 16)
    p.jump(_JEQ, pid, "allow2", "deny2")
    p.label("ioctl")
    p.load(_ARG + 8)
    p.jump(_JEQ, FIOSETOWN, "deny2")
    p.jump(_JEQ, SIOCSPGRP, "deny2")
    p.label("allow2")
    p.ret(SECCOMP_RET_ALLOW)
    p.label("deny2")
    p.ret(deny)
    return p.assemble()


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(table_path):
    """Installs the filter on every thread of this process; raises OSError when the kernel refuses."""
    with open(table_path, "rb") as f:
        table = json.load(f)
    code, count = build(table, os.getpid())
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(count, ctypes.addressof(buf))
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    seccomp_nr = table["syscalls"]["seccomp"]["nr"]
    if libc.syscall(ctypes.c_long(seccomp_nr), ctypes.c_long(SECCOMP_SET_MODE_FILTER),
                    ctypes.c_long(SECCOMP_FILTER_FLAG_TSYNC), ctypes.byref(prog)) != 0:
        raise OSError(ctypes.get_errno(), "seccomp(SECCOMP_SET_MODE_FILTER) failed")
    return count
