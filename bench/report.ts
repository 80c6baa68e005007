/** Small helpers shared by the benchmarks: percentiles and writing one section of BENCHMARKS.md. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { newTestDatabase } from '../test/helpers/database';

export function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export const fmt = (ms: number): string => (ms < 10 ? ms.toFixed(2) : ms.toFixed(0));

/** Replaces (or appends) the section between `<!-- name -->` markers in BENCHMARKS.md. */
export function writeSection(name: string, command: string, body: string): void {
  const file = path.join(__dirname, '..', 'BENCHMARKS.md');
  const head = "# Benchmarks\n\nNumbers measured on this project's machines (2 cores). Each section says the command that made it.\n";
  const current = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : head;
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const stamp = `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'cpu'}).`;
  const section = `${start}\n${body.trim()}\n\nCommand: \`${command}\`. ${stamp}\n${end}`;
  const re = new RegExp(`${start}[\\s\\S]*?${end}`);
  const next = re.test(current) ? current.replace(re, section) : `${current.trimEnd()}\n\n${section}\n`;
  fs.writeFileSync(file, next);
}

/**
 * What every bench process runs with: a fresh database on the throwaway PostgreSQL that
 * `scripts/bench.sh` starts, and the per-owner quotas lifted out of the way (benchmarks measure the
 * engine and the sandbox, not the quotas).
 */
export function benchEnv(): Record<string, string> {
  return {
    DATABASE_URL: newTestDatabase(),
    QUOTA_UPLOADS_PER_MINUTE: '100000',
    QUOTA_VALIDATIONS_IN_FLIGHT: '100000',
    QUOTA_TASKS_PER_MINUTE: '100000',
    QUOTA_TASKS_IN_FLIGHT: '100000',
    QUOTA_FILE_NAMES: '100000',
    QUOTA_STORED_MIB: '1000000',
    QUOTA_LONG_POLLS: '100000',
    // The engine setup.sh used (DOCKER_SOCKET is setup.sh's and the app's setting).
    ...(process.env.DOCKER_SOCKET ? { DOCKER_SOCKET: process.env.DOCKER_SOCKET } : {}),
  };
}

/** Busy share of all CPUs over the next second (0..1). */
async function cpuBusy(): Promise<number> {
  const sample = () =>
    os
      .cpus()
      .reduce(
        (a, c) => ({ idle: a.idle + c.times.idle, all: a.all + c.times.user + c.times.nice + c.times.sys + c.times.idle + c.times.irq }),
        { idle: 0, all: 0 },
      );
  const a = sample();
  await new Promise((r) => setTimeout(r, 1000));
  const b = sample();
  return 1 - (b.idle - a.idle) / Math.max(1, b.all - a.all);
}

/**
 * Waits (at most `maxMs`) until the CPUs are mostly idle: containers removed, runsc processes gone. A
 * floor measured while the last phase's clean-up still runs would be slow for our reasons, not the engine's.
 */
export async function quiet(maxBusy = 0.25, maxMs = 30000): Promise<void> {
  const until = Date.now() + maxMs;
  while (Date.now() < until) if ((await cpuBusy()) <= maxBusy) return;
}
