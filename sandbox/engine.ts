/**
 * Connects to the Docker engine and decides the runtime: runsc, or runc only when explicitly allowed.
 * runsc counts only as registered by scripts/setup.sh: through the monitor wrapper
 * (scripts/runsc-monitor.sh, which names the directory of its per-container pipes) and with
 * `--oci-seccomp` (without it gVisor silently ignores the sandbox's seccomp profile).
 */
import Docker from 'dockerode';
import type { SandboxConfig } from './config';
import type { SandboxLogger as Logger } from './logger';
import { EngineUnavailableError } from './errors';

export type SandboxRuntime = 'runsc' | 'runc';

export interface EngineRuntime {
  runtime: SandboxRuntime;
  /** runsc only: where the wrapper looks for each container's debug-log pipe (syscall-monitor.ts). */
  monitorDir?: string;
}

const MONITOR_DIR_ARG = '--taskflow-monitor-dir=';
const SETUP_HINT =
  'Run `bash scripts/setup.sh` as root (it registers runsc through scripts/runsc-monitor.sh) and reload dockerd (kill -HUP its pid).';

/** What is wrong with the engine's runsc registration, or undefined when it is TaskFlow's. */
function runscProblem(entry: unknown): string | undefined {
  const args = ((entry as { runtimeArgs?: unknown } | undefined)?.runtimeArgs ?? []) as unknown[];
  if (!Array.isArray(args) || !args.includes('--oci-seccomp'))
    return 'is registered without --oci-seccomp, so gVisor would ignore the seccomp profile';
  if (!args.some((a) => typeof a === 'string' && a.startsWith(MONITOR_DIR_ARG) && a.length > MONITOR_DIR_ARG.length)) {
    return `is not registered through the monitor wrapper (no ${MONITOR_DIR_ARG}... argument), so refused system calls would go unseen`;
  }
  return undefined;
}

export function connectDocker(cfg: SandboxConfig): Docker {
  return new Docker({ socketPath: cfg.dockerSocket });
}

export async function verifyEngine(docker: Docker, cfg: SandboxConfig, log: Logger): Promise<EngineRuntime> {
  let info: { Runtimes?: Record<string, unknown>; ServerVersion?: string };
  try {
    info = await docker.info();
  } catch (err) {
    throw new EngineUnavailableError(
      `Docker engine not reachable at ${cfg.dockerSocket} (${(err as Error).message}). ` +
        'Run `bash scripts/setup.sh` (it installs docker.io and runsc and starts dockerd), or set DOCKER_SOCKET.',
      err,
    );
  }
  const runtimes = Object.keys(info.Runtimes ?? {});
  if (runtimes.includes('runsc')) {
    const entry = info.Runtimes?.runsc as { runtimeArgs?: string[] };
    const problem = runscProblem(entry);
    if (problem) throw new EngineUnavailableError(`Docker engine at ${cfg.dockerSocket}: its runsc runtime ${problem}. ${SETUP_HINT}`);
    const monitorDir = entry.runtimeArgs!.find((a) => a.startsWith(MONITOR_DIR_ARG))!.slice(MONITOR_DIR_ARG.length);
    log.info('sandbox runtime', { runtime: 'runsc', engine: info.ServerVersion, monitorDir });
    return { runtime: 'runsc', monitorDir };
  }
  if (cfg.allowInsecureRunc) {
    log.warn(
      'INSECURE: SANDBOX_ALLOW_INSECURE_RUNC is on and the engine has no runsc runtime; untrusted code will run under runc, sharing the host kernel. Never use this in production.',
      { runtime: 'runc', available: runtimes },
    );
    return { runtime: 'runc' };
  }
  throw new EngineUnavailableError(
    `Docker engine at ${cfg.dockerSocket} has no 'runsc' (gVisor) runtime; it offers: ${runtimes.join(', ') || 'none'}. ` +
      'Install runsc (apt-get install runsc) and register it in /etc/docker/daemon.json through the monitor wrapper ' +
      'with --oci-seccomp: ' +
      SETUP_HINT,
  );
}
