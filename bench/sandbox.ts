/**
 * Cold `docker run --rm`-style execution vs warm pool containers, for a trivial handler.
 * Run: npx ts-node --transpile-only bench/sandbox.ts [--runs N] [--calls N]
 */
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { createSandbox, sha256, type RunOutcome } from '../sandbox';
import { fmt, percentile, writeSection } from './report';

const SOURCE = 'async def handler(payload):\n    return {"n": payload.get("n", 0) + 1}\n';
const SYNC_SOURCE = 'def handler(payload):\n    return {"n": payload.get("n", 0) + 1}\n';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

function assertOk(o: RunOutcome): void {
  if (!o.ok) throw new Error(`benchmark run failed: ${JSON.stringify(o.payloads)}`);
}

async function timed(fn: () => Promise<RunOutcome>): Promise<number> {
  const t = process.hrtime.bigint();
  assertOk(await fn());
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function main(): Promise<void> {
  const runs = arg('--runs', 10);
  const calls = arg('--calls', 300);
  const config = loadConfig();
  const log = createLogger('warn');
  const sandbox = await createSandbox(config.sandbox, log, { validationPool: true, keyedLimits: config.taskLimits });
  const req = (n: number) => ({ source: SOURCE, fileName: 'bench.py', payloads: [{ n }] });
  try {
    const cold: number[] = [];
    for (let i = 0; i < runs; i++) cold.push(await timed(() => sandbox.runCold(req(i))));

    // Warm: wait until the pool has refilled before each run, as a steady-state server would be.
    const warm: number[] = [];
    for (let i = 0; i < runs; i++) {
      await new Promise((r) => setTimeout(r, 2500));
      warm.push(await timed(() => sandbox.validate(req(i))));
    }

    // Keyed warm container: the same owner and file version, call after call. Let the pool
    // refills above finish first: a container start eats a core for about a second.
    await new Promise((r) => setTimeout(r, 4000));
    const key = { owner: 'bench', sha256: sha256(SOURCE) };
    const first = await timed(() => sandbox.runKeyed(key, req(0)));
    const perCall: number[] = [];
    for (let i = 0; i < calls; i++) perCall.push(await timed(() => sandbox.runKeyed(key, req(i))));
    const syncKey = { owner: 'bench', sha256: sha256(SYNC_SOURCE) };
    const perSyncCall: number[] = [];
    for (let i = 0; i < calls; i++) {
      perSyncCall.push(await timed(() => sandbox.runKeyed(syncKey, { source: SYNC_SOURCE, fileName: 'bench_sync.py', payloads: [{ n: i }] })));
    }

    const row = (name: string, v: number[]) =>
      `| ${name} | ${v.length} | ${fmt(percentile(v, 50))} | ${fmt(percentile(v, 99))} | ${fmt(Math.min(...v))} |`;
    const speedup = percentile(cold, 50) / percentile(warm, 50);
    const body = [
      '## Sandbox: cold vs warm (trivial handler, runsc)',
      '',
      '| path | runs | p50 ms | p99 ms | min ms |',
      '|---|---|---|---|---|',
      row('cold: create + start container, agent, load, call, remove', cold),
      row('warm validation: pooled single-use container, load, call, remove', warm),
      row('warm keyed call: same owner + sha, loaded async handler', perCall),
      row('warm keyed call: same owner + sha, loaded sync handler', perSyncCall),
      '',
      `First result on a keyed container (load included): ${fmt(first)} ms.`,
      `Warm validation sandbox phase is ${speedup.toFixed(0)}× faster than cold at p50 (target ≥ 50×).`,
      `Warm call overhead p50: ${fmt(percentile(perSyncCall, 50))} ms for a sync handler, ${fmt(percentile(perCall, 50))} ms for an async one (target < 2 ms).`,
      'Where the time goes: under runsc\'s ptrace platform (its KVM platform hangs on these machines) every syscall is trapped. Measured inside one container with a driver on a pipe, the agent answers a run in ~1.1 ms p50 and a ping in 0.2 ms; Docker\'s attach stream adds about 0.5 ms per round trip, and an async handler adds ~0.7 ms for `loop.run_until_complete`. The < 2 ms target is not met end to end here.',
    ].join('\n');
    writeSection('sandbox', `npx ts-node --transpile-only bench/sandbox.ts --runs ${runs} --calls ${calls}`, body);
    process.stdout.write(body + '\n');
  } finally {
    await sandbox.close();
  }
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
  process.exit(1);
});
