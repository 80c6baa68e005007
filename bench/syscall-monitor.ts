/**
 * What watching for refused system calls costs: cold start and warm keyed call with the host-side
 * syscall monitor on and off, in the same run (runs interleaved, so drift hits both alike). Both
 * sandboxes enforce the same seccomp profile and the child's own filter; only the monitor (gVisor's
 * debug log through a pipe, parsed by the host) differs.
 * Run: bash scripts/bench.sh syscall-monitor [--runs N] [--calls N]
 */
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { createSandbox, sha256, type RunOutcome, type Sandbox } from '../sandbox';
import { AgentContainer } from '../sandbox/agent-container';
import { connectDocker, verifyEngine } from '../sandbox/engine';
import { instanceId } from '../sandbox/leftovers';
import { runOnAgent } from '../sandbox/runner';
import { fmt, percentile, writeSection } from './report';

const SOURCE = 'def handler(payload):\n    return {"n": payload.get("n", 0) + 1}\n';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

async function timed(fn: () => Promise<RunOutcome>): Promise<number> {
  const t = process.hrtime.bigint();
  const o = await fn();
  if (o.status !== 'ok') throw new Error(`benchmark run failed (${o.status}): ${JSON.stringify(o.payloads)}`);
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function main(): Promise<void> {
  const runs = arg('--runs', 10);
  const calls = arg('--calls', 300);
  const config = loadConfig();
  const log = createLogger('warn');
  const opts = { keyedLimits: config.taskLimits };
  const on = await createSandbox(config.sandbox, log, { ...opts, syscallMonitor: true });
  const off = await createSandbox(config.sandbox, log, { ...opts, syscallMonitor: false });
  const req = (n: number) => ({ source: SOURCE, fileName: 'bench.py', payloads: [{ n }] });
  const both: [string, Sandbox][] = [
    ['monitored', on],
    ['unmonitored', off],
  ];
  const cold: Record<string, number[]> = { monitored: [], unmonitored: [] };
  const warm: Record<string, number[]> = { monitored: [], unmonitored: [] };
  try {
    for (let i = 0; i < runs; i++) {
      for (const [name, sb] of i % 2 ? [...both].reverse() : both) cold[name].push(await timed(() => sb.runCold(req(i))));
    }
    const key = { owner: 'bench', sha256: sha256(SOURCE) };
    for (const [, sb] of both) await timed(() => sb.runKeyed(key, req(0))); // load once
    const block = 50;
    for (let done = 0; done < calls; done += block) {
      for (const [name, sb] of (done / block) % 2 ? [...both].reverse() : both) {
        for (let i = 0; i < Math.min(block, calls - done); i++) warm[name].push(await timed(() => sb.runKeyed(key, req(i))));
      }
    }

    // What the monitor reads: gVisor's debug log of one container start, then of one more call.
    const engine = await verifyEngine(connectDocker(config.sandbox), config.sandbox, log);
    const agent = await AgentContainer.start(connectDocker(config.sandbox), {
      image: on.image,
      runtime: engine.runtime,
      limits: config.taskLimits,
      kind: 'cold',
      instance: instanceId(),
      warm: false,
      log,
      monitorDir: engine.monitorDir,
    });
    await new Promise((r) => setTimeout(r, 500)); // the sandbox's last start-up lines
    const atStart = agent.monitorBytes;
    await runOnAgent(agent, req(0), config.taskLimits);
    const perFirstRun = agent.monitorBytes - atStart;
    await runOnAgent(agent, req(1), config.taskLimits);
    const perCall = agent.monitorBytes - atStart - perFirstRun;
    await agent.destroy();

    const row = (what: string, v: Record<string, number[]>) => {
      const [a, b] = [percentile(v.monitored, 50), percentile(v.unmonitored, 50)];
      return `| ${what} | ${v.monitored.length} | ${fmt(a)} | ${fmt(percentile(v.monitored, 99))} | ${fmt(b)} | ${fmt(percentile(v.unmonitored, 99))} | ${(a / b).toFixed(2)} |`;
    };
    const body = [
      '## Syscall monitor: cost of seeing refused system calls (runsc)',
      '',
      '| path | runs each | monitored p50 ms | p99 | unmonitored p50 ms | p99 | ratio p50 |',
      '|---|---|---|---|---|---|---|',
      row('cold: create + start, agent, load, call, remove', cold),
      row('warm keyed call (loaded sync handler)', warm),
      '',
      `Debug log read per container start: ${(atStart / 1024).toFixed(0)} KiB (through a pipe, never on disk; mostly gVisor's own set-up). ` +
        `The first run on it (load + call) added ${perFirstRun} bytes, a warm call ${perCall}. ` +
        "Both columns enforce the same seccomp profile and the child's own filter; " +
        'only the host-side monitor (runsc --debug into a per-container pipe, parsed by the host) differs.',
    ].join('\n');
    writeSection('syscall-monitor', `bash scripts/bench.sh syscall-monitor --runs ${runs} --calls ${calls}`, body);
    process.stdout.write(body + '\n');
  } finally {
    await Promise.all([on.close(), off.close()]);
  }
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
  process.exit(1);
});
