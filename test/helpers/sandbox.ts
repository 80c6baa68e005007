/** One real sandbox (Docker + runsc) per suite, with limits small enough to keep tests quick. */
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig, type Config } from '../../src/config';
import { createLogger, silentLogger } from '../../src/logger';
import { createSandbox, type Sandbox, type SandboxOptions } from '../../sandbox';

export const FIXTURES = path.join(__dirname, '..', 'fixtures', 'tasks');

export function fixture(name: string): string {
  return fs.readFileSync(path.join(FIXTURES, name), 'utf8');
}

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    SANDBOX_PAYLOAD_TIMEOUT_MS: '2500',
    SANDBOX_TOTAL_TIMEOUT_MS: '20000',
    SANDBOX_MEMORY_MIB: '128',
    SANDBOX_POOL_SIZE: '1',
    TASK_PAYLOAD_TIMEOUT_MS: '2500',
    LOG_LEVEL: 'warn',
    // The engine the suite's setup.sh used (DOCKER_SOCKET is setup.sh's and the app's setting too).
    ...(process.env.DOCKER_SOCKET ? { DOCKER_SOCKET: process.env.DOCKER_SOCKET } : {}),
    ...env,
  });
}

export async function startSandbox(config: Config, opts: SandboxOptions = {}): Promise<Sandbox> {
  const log = process.env.TASKFLOW_TEST_LOGS ? createLogger('debug') : silentLogger;
  return createSandbox(config.sandbox, log, opts);
}
