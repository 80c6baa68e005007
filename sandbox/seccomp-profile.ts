/**
 * The container-wide seccomp profile. gVisor enforces it itself (`runsc --oci-seccomp`) on every
 * process in the sandbox, the agent (PID 1) included. Allow by default; deny what no sandbox
 * process needs: sockets other than AF_UNIX, ptrace, process_vm_*, pidfd_*, and every way of
 * signalling PID 1 (or -1, "everyone") — kill-family calls and F_SETOWN-style signal ownership.
 *
 * Facts of runsc 0.0~20221219 this relies on:
 * - ERRNO always answers EPERM (errnoRet is ignored): the call fails, the caller goes on, and gVisor's
 *   debug log records `Syscall N: denied by seccomp`, which the host acts on (syscall-monitor.ts).
 * - LOG and KILL_PROCESS actions make the container fail to start; KILL kills only the thread.
 * - clone3 must never be listed: threads need ENOSYS from it (to fall back to clone), and any
 *   listed action would give them EPERM. For the same reason every container on an
 *   `--oci-seccomp` runtime needs this explicit profile: Docker's default one lists clone3.
 * - pid arguments are C ints: gVisor reads only their low 32 bits, so kill(1 | 1<<32) is kill(1).
 *   Comparisons on pids therefore mask to 32 bits.
 * The child runner adds its own, stricter filter (image/syscall_filter.py).
 */
import { sha256Hex } from './hash';
import type { SyscallName } from './syscalls';

type Op = 'SCMP_CMP_EQ' | 'SCMP_CMP_NE' | 'SCMP_CMP_MASKED_EQ';
interface Arg {
  index: number;
  value: number;
  valueTwo?: number;
  op: Op;
}
interface Rule {
  names: SyscallName[];
  action: 'SCMP_ACT_ERRNO';
  args?: Arg[];
}

const AF_UNIX = 1;
const F_SETOWN = 8;
const F_SETOWN_EX = 15;
const FIOSETOWN = 0x8901;
const SIOCSPGRP = 0x8902;
const LOW32 = 0xffffffff;
const DENY = 'SCMP_ACT_ERRNO' as const;

/** Argument `index`, read as a C int, equals `pid` (negative values as the kernel sees them). */
const intArgIs = (index: number, pid: number): Arg => ({ index, value: LOW32, valueTwo: pid >>> 0, op: 'SCMP_CMP_MASKED_EQ' });
const argIs = (index: number, value: number): Arg => ({ index, value, op: 'SCMP_CMP_EQ' });

/** PID 1 (the agent) and -1 (every process the caller may signal). */
const PROTECTED_PIDS = [1, -1];
const SIGNAL_CALLS: SyscallName[] = ['kill', 'tkill', 'tgkill', 'rt_sigqueueinfo', 'rt_tgsigqueueinfo'];

const rules: Rule[] = [
  {
    names: ['ptrace', 'process_vm_readv', 'process_vm_writev', 'pidfd_open', 'pidfd_send_signal', 'pidfd_getfd'],
    action: DENY,
  },
  // A 64-bit comparison: AF_UNIX with junk in the high bits is refused too, which costs nothing.
  { names: ['socket'], action: DENY, args: [{ index: 0, value: AF_UNIX, op: 'SCMP_CMP_NE' }] },
  ...SIGNAL_CALLS.flatMap((name) => PROTECTED_PIDS.map((pid): Rule => ({ names: [name], action: DENY, args: [intArgIs(0, pid)] }))),
  // SIGIO/SIGURG sent to a descriptor's owner: F_SETOWN to PID 1 killed the agent in a test.
  ...PROTECTED_PIDS.map((pid): Rule => ({ names: ['fcntl'], action: DENY, args: [argIs(1, F_SETOWN), intArgIs(2, pid)] })),
  { names: ['fcntl'], action: DENY, args: [argIs(1, F_SETOWN_EX)] }, // the owner hides behind a pointer
  { names: ['ioctl'], action: DENY, args: [argIs(1, FIOSETOWN)] },
  { names: ['ioctl'], action: DENY, args: [argIs(1, SIOCSPGRP)] },
];

export const SECCOMP_PROFILE = {
  defaultAction: 'SCMP_ACT_ALLOW',
  architectures: ['SCMP_ARCH_X86_64'],
  syscalls: rules,
} as const;

const PROFILE_JSON = JSON.stringify(SECCOMP_PROFILE);

/** The profile as Docker takes it through the API: the JSON text itself (a file path does not work there). */
export const SECCOMP_SECURITY_OPT = `seccomp=${PROFILE_JSON}`;

/** How run reports name it: `taskflow-<first 12 hex of the JSON's sha256>`. */
export const SECCOMP_PROFILE_NAME = `taskflow-${sha256Hex(PROFILE_JSON).slice(0, 12)}`;
