/**
 * Runs the pinned uv with no configuration but ours: `--no-config` (no uv.toml, pyproject or user config),
 * a clean environment (no UV_* or PIP_* variable of the host changes what is resolved or where from), only
 * the one index, and the cache in DEPENDENCY_CACHE_DIR. The network settings an operator sets for every
 * program (proxies, SSL_CERT_FILE) are passed through; `--native-tls` on DEPENDENCY_NATIVE_TLS.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { DependencyConfig } from '../config';
import { classifyUvFailure } from './errors';
import { TARGET } from './target';

const PASSED_ENV = /^(PATH|HOME|LANG|LC_ALL|TMPDIR|SSL_CERT_FILE|SSL_CERT_DIR|(HTTPS?|ALL|NO)_PROXY|(https?|all|no)_proxy)$/;

export interface UvResult {
  stdout: string;
  stderr: string;
}

function uvEnv(cfg: DependencyConfig): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (PASSED_ENV.test(k) && v !== undefined) env[k] = v;
  env.UV_NO_PROGRESS = '1';
  env.NO_COLOR = '1';
  env.UV_CACHE_DIR = path.join(cfg.cacheDir, 'uv-cache');
  return env;
}

/** The flags every uv call shares: the target, the one index, wheels only, nothing else read or fetched. */
export function commonArgs(cfg: DependencyConfig): string[] {
  return [
    '--no-config',
    '--no-python-downloads',
    '--python',
    TARGET.python,
    '--python-platform',
    TARGET.platform,
    '--index-url',
    cfg.indexUrl,
    '--only-binary',
    ':all:',
    '--cache-dir',
    path.join(cfg.cacheDir, 'uv-cache'),
    ...(cfg.nativeTls ? ['--native-tls'] : []),
  ];
}

/** `uv pip <args>`; a non-zero exit is thrown as what it means (classifyUvFailure). */
export function uvPip(cfg: DependencyConfig, args: string[], opts: { cwd: string; signal?: AbortSignal }): Promise<UvResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cfg.uvPath, ['pip', ...args], {
      cwd: opts.cwd,
      env: uvEnv(cfg),
      stdio: ['ignore', 'pipe', 'pipe'],
      signal: opts.signal,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString('utf8')).slice(-64 * 1024)));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve({ stdout, stderr });
      else reject(classifyUvFailure(stderr || `uv exited with ${code}`));
    });
  });
}
