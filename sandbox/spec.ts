/**
 * The container spec every sandbox gets. Deny by default: no network, read-only root, no
 * capabilities but the agent's three (see SANDBOX_USER), no host paths or host environment, every resource bounded, and under runsc the
 * seccomp profile gVisor enforces on every process (seccomp-profile.ts; under runc Docker's
 * default profile stays, as it is stricter for a shared kernel).
 */
import type Docker from 'dockerode';
import type { SandboxLimits } from './limits';
import type { SandboxRuntime } from './engine';
import { SECCOMP_PROFILE_NAME, SECCOMP_SECURITY_OPT } from './seccomp-profile';
import type { ContainerSpecRecord } from './types';

export const LABEL = 'taskflow.sandbox';
export const LABEL_INSTANCE = 'taskflow.instance';
export const LABEL_KIND = 'taskflow.kind';
/**
 * The agent starts as root holding only these capabilities, and at once becomes a uid of its own
 * keeping them (image/agent.py, drop_root); every process it starts runs as 65534 with none. Two
 * uids because gVisor lets any process of the agent's uid open /proc/1/fd/* (the host's request
 * stream and the report channel), and a separate uid is what it refuses.
 */
export const SANDBOX_USER = '0:0';
export const AGENT_CAPABILITIES = ['KILL', 'SETGID', 'SETUID'];
export const AGENT_CMD = ['/usr/bin/python3.11', '-I', '-S', '-B', '/opt/taskflow/agent.py'];
const MiB = 1024 * 1024;

/** `checker` containers only parse uploads (long-lived, many checks); the others run user code. */
export type ContainerKind = 'validation' | 'keyed' | 'cold' | 'checker';

export function containerSpec(
  image: string,
  runtime: SandboxRuntime,
  limits: SandboxLimits,
  labels: Record<string, string>,
): Docker.ContainerCreateOptions {
  return {
    Image: image,
    Cmd: AGENT_CMD,
    User: SANDBOX_USER,
    WorkingDir: '/tmp',
    Hostname: 'sandbox',
    Env: ['PATH=/usr/bin:/bin', 'LANG=C.UTF-8'],
    Labels: { [LABEL]: 'true', ...labels },
    OpenStdin: true,
    StdinOnce: false,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    NetworkDisabled: true,
    HostConfig: {
      Runtime: runtime,
      NetworkMode: 'none',
      ReadonlyRootfs: true,
      Tmpfs: {
        '/tmp': `rw,nosuid,nodev,noexec,size=${limits.tmpfsMiB}m,mode=1777`,
        // In place of Docker's cgroup mount: runsc 20240729 turns that into a cgroupfs of its own in
        // which each container's cgroup is named by its container id (a private cgroup namespace
        // does not change that), so /proc/self/cgroup told a validation container from a production
        // one. An empty read-only tmpfs shows none, like runsc 20221219 did; limits are the host's.
        '/sys/fs/cgroup': 'ro,nosuid,nodev,noexec,size=4k,mode=0555',
      },
      CapDrop: ['ALL'],
      CapAdd: AGENT_CAPABILITIES,
      SecurityOpt: runtime === 'runsc' ? ['no-new-privileges', SECCOMP_SECURITY_OPT] : ['no-new-privileges'],
      PidsLimit: limits.pidsMax,
      Memory: limits.memoryMiB * MiB,
      MemorySwap: limits.memoryMiB * MiB,
      NanoCpus: Math.round(limits.cpus * 1e9),
      Ulimits: [
        { Name: 'nofile', Soft: limits.nofile, Hard: limits.nofile },
        { Name: 'fsize', Soft: limits.fsizeMiB * MiB, Hard: limits.fsizeMiB * MiB },
        { Name: 'core', Soft: 0, Hard: 0 },
      ],
      IpcMode: 'private',
      // Output reaches us over the attach stream only; a flood must not fill the host's log files.
      LogConfig: { Type: 'none', Config: {} },
      AutoRemove: false,
      Privileged: false,
      Init: false,
    },
  };
}

export function specRecord(
  containerId: string,
  opts: Docker.ContainerCreateOptions,
  limits: SandboxLimits,
  warm: boolean,
  syscallMonitor: boolean,
): ContainerSpecRecord {
  const hc = opts.HostConfig ?? {};
  return {
    containerId: containerId.slice(0, 12),
    image: opts.Image ?? '',
    runtime: hc.Runtime ?? '',
    user: opts.User ?? '',
    networkMode: hc.NetworkMode ?? '',
    readOnlyRootfs: hc.ReadonlyRootfs ?? false,
    capDrop: hc.CapDrop ?? [],
    capAdd: hc.CapAdd ?? [],
    // The profile's JSON is long: the record names it (its content hash is in the name).
    securityOpt: (hc.SecurityOpt ?? []).map((o: string) => (o === SECCOMP_SECURITY_OPT ? `seccomp=${SECCOMP_PROFILE_NAME}` : o)),
    syscallMonitor,
    limits,
    warm,
  };
}
