/**
 * What one sandbox container costs the host, apart from any workflow: the CPU of a container's life
 * (start to agent ready, then removal; and the same with a load and one call, as a validation's run
 * container) with the syscall monitor on and off, and the memory of an idle warm keyed container
 * (no pools beside it, so no other container shares runsc's pages).
 * CPU comes from the engine's cpuacct cgroup (BENCH_ENGINE_CGROUP, see bench/where-time-goes.ts):
 * its `containers` child holds the sandboxes; the rest is dockerd, containerd, the shims and runsc's commands.
 * Run: BENCH_ENGINE_CGROUP=/taskflow-engine bash scripts/bench.sh container-cost [--runs N]
 */
import fs from 'node:fs';
import Docker from 'dockerode';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { createSandbox, sha256 } from '../sandbox';
import { AgentContainer } from '../sandbox/agent-container';
import { instanceId } from '../sandbox/leftovers';
import { cgroupUsageKiB, containerProcesses, runscMemory } from './host-memory';

const SOURCE = 'async def handler(payload):\n    return {"n": payload.get("n", 0) + 1}\n';
const cgroup = process.env.BENCH_ENGINE_CGROUP;
const ns = (c: string) => Number(fs.readFileSync(`/sys/fs/cgroup/cpuacct${c}/cpuacct.usage`, 'utf8').trim());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  if (!cgroup) throw new Error('set BENCH_ENGINE_CGROUP to the cpuacct cgroup dockerd runs in (its containers in its `containers` child)');
  const i = process.argv.indexOf('--runs');
  const runs = i > 0 ? Number(process.argv[i + 1]) : 8;
  const config = loadConfig({ ...process.env, LOG_LEVEL: 'warn', SANDBOX_POOL_SIZE: '0', SANDBOX_CHECKER_CONTAINERS: '0' });
  const log = createLogger('warn');
  const docker = new Docker({ socketPath: config.sandbox.dockerSocket });
  const lines: string[] = [];
  for (const monitor of [true, false]) {
    const sandbox = await createSandbox(config.sandbox, log, { syscallMonitor: monitor, keyedLimits: config.taskLimits });
    try {
      const args = ((await docker.info()) as { Runtimes: { runsc: { runtimeArgs: string[] } } }).Runtimes.runsc.runtimeArgs;
      const monitorDir = monitor ? args.find((a) => a.startsWith('--taskflow-monitor-dir='))?.split('=')[1] : undefined;
      const measure = async (name: string, once: () => Promise<void>) => {
        await sleep(1500);
        const a = [ns(cgroup), ns(`${cgroup}/containers`)];
        for (let n = 0; n < runs; n++) await once();
        await sleep(1500); // removals finish
        const b = [ns(cgroup), ns(`${cgroup}/containers`)];
        const sandboxes = (b[1] - a[1]) / 1e6 / runs;
        const engine = (b[0] - b[1] - (a[0] - a[1])) / 1e6 / runs;
        lines.push(`| ${name} | ${monitor ? 'on' : 'off'} | ${runs} | ${sandboxes.toFixed(0)} | ${engine.toFixed(0)} |`);
      };
      await measure('start (create, attach, start, agent ready), remove', async () => {
        const agent = await AgentContainer.start(docker, {
          image: sandbox.image,
          runtime: sandbox.runtime,
          limits: config.sandbox.limits,
          kind: 'cold',
          instance: instanceId(),
          warm: false,
          log,
          monitorDir,
        });
        await agent.destroy();
      });
      await measure('start, load, one call, remove (a run container)', async () => {
        const o = await sandbox.runCold({ source: SOURCE, fileName: 'bench.py', payloads: [{ n: 1 }] });
        if (o.status !== 'ok') throw new Error(`run failed: ${o.status}`);
      });
      if (monitor) {
        const key = { owner: 'bench', sha256: sha256(SOURCE) };
        let id = '';
        for (let n = 0; n < 20; n++)
          id = (await sandbox.runKeyed(key, { source: SOURCE, fileName: 'bench.py', payloads: [{ n }] })).spec.containerId;
        await sleep(3000);
        const processes = containerProcesses(id);
        const m = runscMemory(processes);
        const sandboxPid = processes.find((p) => p.role === 'sandbox')?.pid;
        const charged = sandboxPid === undefined ? undefined : cgroupUsageKiB(sandboxPid);
        const mib = (kib: number) => (kib / 1024).toFixed(1);
        lines.push(
          '',
          `Idle warm keyed container (after 20 calls, alone): runsc's ${m.count} processes RSS ${mib(m.rssKiB)} MiB, PSS ${mib(m.pssKiB)} MiB, ` +
            `private ${mib(m.privateKiB)} MiB; its memory cgroup ${charged === undefined ? 'n/a' : `${mib(charged)} MiB`}. Runtime args: ${args.filter((a) => !a.startsWith('--taskflow-')).join(' ')}.`,
          '',
        );
      }
    } finally {
      await sandbox.close();
    }
  }
  const [memory] = lines.splice(
    lines.findIndex((l) => l.startsWith('Idle')),
    1,
  );
  const body = [
    '| container life | syscall monitor | runs | sandboxes CPU ms | engine CPU ms |',
    '|---|---|---|---|---|',
    ...lines.filter((l) => l.startsWith('|')),
    '',
    memory,
  ].join('\n');
  process.stdout.write(body + '\n');
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
