/**
 * Connects to the Docker engine and decides the runtime: runsc, or runc only when explicitly allowed.
 * runsc counts only as registered by scripts/setup.sh: through the monitor wrapper
 * (scripts/runsc-monitor.sh, which names the directory of its per-container pipes) and with
 * `--oci-seccomp` (without it gVisor silently ignores the sandbox's seccomp profile).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import type { SandboxConfig } from './config';
import type { SandboxLogger as Logger } from './logger';
import { EngineUnavailableError } from './errors';

export type SandboxRuntime = 'runsc' | 'runc';

/** The gVisor release the engine runs sandboxes with, as that binary reports itself. */
export interface RunscInfo {
  /** The real binary behind the monitor wrapper (its `--taskflow-runsc=`). */
  path: string;
  /** `runsc --version`'s first line without its prefix: "0.0~20240729.0", "release-20240729.0". */
  version: string;
  /** The release date in it, YYYYMMDD. */
  release: number;
  /** systrap, ptrace or kvm: the registration's --platform, else the binary's own default. */
  platform: string;
}

export interface EngineRuntime {
  runtime: SandboxRuntime;
  /** runsc only: where the wrapper looks for each container's debug-log pipe (syscall-monitor.ts). */
  monitorDir?: string;
  runsc?: RunscInfo;
}

const MONITOR_DIR_ARG = '--taskflow-monitor-dir=';
const RUNSC_ARG = '--taskflow-runsc=';
/** The wrapper's own default (scripts/runsc-monitor.sh) when the registration names no binary. */
const WRAPPER_DEFAULT_RUNSC = '/usr/bin/runsc';
const run = promisify(execFile);
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

/** `--platform=X` or `--platform X` among the registration's arguments (the last one wins, as in runsc). */
function platformArg(args: string[]): string | undefined {
  let platform: string | undefined;
  args.forEach((a, i) => {
    const m = /^--?platform(?:=(.*))?$/.exec(a);
    if (m) platform = m[1] ?? args[i + 1];
  });
  return platform;
}

/**
 * Asks the registered runsc binary itself: its version (`--version`) and, unless the registration
 * picks one, its default platform (`flags`). The worker runs beside the engine (it makes the monitor's
 * pipes on the same host), so the binary's path is its path too.
 */
export async function readRunsc(args: string[]): Promise<RunscInfo> {
  const path = args.find((a) => a.startsWith(RUNSC_ARG))?.slice(RUNSC_ARG.length) || WRAPPER_DEFAULT_RUNSC;
  let versionText: string;
  try {
    versionText = (await run(path, ['--version'], { timeout: 10000 })).stdout;
  } catch (err) {
    throw new EngineUnavailableError(`cannot ask the engine's runsc (${path} --version): ${(err as Error).message}. ${SETUP_HINT}`, err);
  }
  const version = /^runsc version (\S+)/m.exec(versionText)?.[1] ?? versionText.split('\n')[0].trim();
  const release = Number(/(\d{8})/.exec(version)?.[1] ?? 0);
  let platform = platformArg(args);
  if (!platform) {
    const flags = await run(path, ['flags'], { timeout: 10000 }).then(
      (r) => r.stdout + r.stderr,
      (err: { stdout?: string; stderr?: string }) => `${err.stdout ?? ''}${err.stderr ?? ''}`,
    );
    platform = /-platform string\n.*\(default "([a-z0-9]+)"\)/.exec(flags)?.[1] ?? 'unknown';
  }
  return { path, version, release, platform };
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
    const runsc = await readRunsc(entry.runtimeArgs!);
    if (runsc.release < cfg.runscMinRelease) {
      throw new EngineUnavailableError(
        `Docker engine at ${cfg.dockerSocket}: its runsc (${runsc.path}) is release ${runsc.release || 'unknown'} ` +
          `("${runsc.version}"), older than the minimum ${cfg.runscMinRelease} (RUNSC_MIN_VERSION): it lacks gVisor's ` +
          "security fixes since then. Install a current one with `bash scripts/setup.sh` (Debian 13's runsc by default) " +
          'and reload dockerd (kill -HUP its pid).',
      );
    }
    log.info('sandbox runtime', { runtime: 'runsc', engine: info.ServerVersion, monitorDir, runsc });
    return { runtime: 'runsc', monitorDir, runsc };
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
