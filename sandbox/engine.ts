/** Connects to the Docker engine and decides the runtime: runsc, or runc only when explicitly allowed. */
import Docker from 'dockerode';
import type { SandboxConfig } from './config';
import type { SandboxLogger as Logger } from './logger';
import { EngineUnavailableError } from './errors';

export type SandboxRuntime = 'runsc' | 'runc';

export function connectDocker(cfg: SandboxConfig): Docker {
  return new Docker({ socketPath: cfg.dockerSocket });
}

export async function verifyEngine(docker: Docker, cfg: SandboxConfig, log: Logger): Promise<SandboxRuntime> {
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
    log.info('sandbox runtime', { runtime: 'runsc', engine: info.ServerVersion });
    return 'runsc';
  }
  if (cfg.allowInsecureRunc) {
    log.warn(
      'INSECURE: SANDBOX_ALLOW_INSECURE_RUNC is on and the engine has no runsc runtime; untrusted code will run under runc, sharing the host kernel. Never use this in production.',
      { runtime: 'runc', available: runtimes },
    );
    return 'runc';
  }
  throw new EngineUnavailableError(
    `Docker engine at ${cfg.dockerSocket} has no 'runsc' (gVisor) runtime; it offers: ${runtimes.join(', ') || 'none'}. ` +
      'Install runsc (apt-get install runsc), add {"runtimes": {"runsc": {"path": "/usr/bin/runsc"}}} to ' +
      '/etc/docker/daemon.json and reload dockerd (kill -HUP its pid), or run `bash scripts/setup.sh`.',
  );
}
