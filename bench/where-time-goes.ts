/**
 * Where a validation's time and CPU go, measured: the steps of one validation from its workflow
 * history (event times, on this machine's clock, as the client's), and the CPU every process on the
 * machine spent per validation while several clients validated back to back (from /proc).
 */
import fs from 'node:fs';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { validationWorkflowId, type ValidationStatus } from '../domain/validation';
import { fmt, percentile } from './report';

const E = temporal.api.enums.v1.EventType;

/** Step name → ms, for one validation. */
export type Steps = Record<string, number>;

export const STEP_NAMES = [
  'upload → workflow started (HTTP, one transaction: quotas, bytes, record; eager start)',
  'first workflow task (stage as a local activity, search attributes)',
  'static check activity: scheduled → completed',
  '… of which the check in the checker container',
  'workflow task between the two activities',
  'sandbox run activity: scheduled → completed',
  '… of which load and call in the run container',
  'last workflow task (promote as a local activity) → closed',
  'closed → the client has the answer (long poll, HTTP; negative: answered from the final record before the close)',
] as const;

/** The steps of validation `final`, which the client started at `startedAt` and had at `answeredAt` (both epoch ms). */
export async function validationSteps(client: Client, final: ValidationStatus, startedAt: number, answeredAt: number): Promise<Steps> {
  const handle = client.workflow.getHandle(validationWorkflowId(final.validation_id));
  // The answer may come from the record, final just before the workflow closes: the close is awaited.
  await handle.result();
  const history = await handle.fetchHistory();
  const times = new Map<number, number[]>();
  for (const e of history.events ?? []) {
    const t = Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);
    const type = Number(e.eventType);
    times.set(type, [...(times.get(type) ?? []), t]);
  }
  const at = (type: temporal.api.enums.v1.EventType, i = 0): number => {
    const t = times.get(type)?.[i];
    if (t === undefined) throw new Error(`validation ${final.validation_id}: no event ${E[type]} #${i}`);
    return t;
  };
  const scheduled = (i: number) => at(E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, i);
  const completed = (i: number) => at(E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, i);
  const closed = at(E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED);
  const [n0, n1, n2, n3, n4, n5, n6, n7, n8] = STEP_NAMES;
  return {
    [n0]: at(E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED) - startedAt,
    [n1]: at(E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) - at(E.EVENT_TYPE_WORKFLOW_TASK_STARTED),
    [n2]: completed(0) - scheduled(0),
    [n3]: final.metrics.static_check_ms ?? NaN,
    [n4]: scheduled(1) - completed(0),
    [n5]: completed(1) - scheduled(1),
    [n6]: final.metrics.sandbox_wall_ms ?? NaN,
    [n7]: closed - completed(1),
    [n8]: answeredAt - closed,
  };
}

export const stepRows = (runs: Steps[]): string[] => [
  '| step (p50 over the latency runs) | ms |',
  '|---|---|',
  ...STEP_NAMES.map(
    (name) =>
      `| ${name} | ${fmt(
        percentile(
          runs.map((r) => r[name]),
          50,
        ),
      )} |`,
  ),
];

interface ProcCpu {
  comm: string;
  ppid: string;
  /** The process's cpuacct cgroup. */
  cgroup: string;
  ticks: number;
}

/** CPU ticks (utime + stime + those of reaped children) per process, keyed "pid comm", with its parent and cpuacct cgroup. */
function cpuTicks(): Map<string, ProcCpu> {
  const out = new Map<string, ProcCpu>();
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let stat: string;
    let cgroups = '';
    try {
      stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      cgroups = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cgroup = /^\d+:(?:[^:]*,)?cpuacct(?:,[^:]*)?:(.*)$/m.exec(cgroups)?.[1] ?? '';
    out.set(`${pid} ${comm}`, { comm, ppid: f[1], cgroup, ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) });
  }
  return out;
}

/**
 * On a machine shared with other work (other Docker engines and their containers), the engine's CPU
 * is read from its own cpuacct cgroup, exactly, exited processes included: BENCH_ENGINE_CGROUP names
 * it (e.g. /taskflow-engine: dockerd started in it, so containerd, the shims and the runsc commands
 * are too; the containers in its `containers` child, dockerd's --cgroup-parent). Its processes are
 * then left out of the /proc count. Without it, every runsc, containerd and dockerd process on the
 * machine counts, and PID 1 with what it reaped (runsc's sandbox and gofer die as orphans).
 */
const ENGINE_CGROUP = process.env.BENCH_ENGINE_CGROUP;
const ENGINE = 'containers: the engine (dockerd, containerd, shims, runsc commands)';
const SANDBOXES = "containers: the sandboxes (runsc's sandbox, gofer and systrap stubs)";

function cpuacctNs(cgroup: string): number {
  return Number(fs.readFileSync(`/sys/fs/cgroup/cpuacct${cgroup}/cpuacct.usage`, 'utf8').trim());
}

/** Who the CPU went to: runsc and the container engine, the Temporal server, this process, the rest. */
function group(pid: string, p: ProcCpu): string | undefined {
  if (pid === String(process.pid)) return 'node: API + validation worker (this process)';
  // The dev server this bench started (a child of this process).
  if (p.comm === 'temporal' && p.ppid === String(process.pid)) return 'Temporal dev server';
  if (ENGINE_CGROUP)
    return p.cgroup === ENGINE_CGROUP || p.cgroup.startsWith(`${ENGINE_CGROUP}/`)
      ? undefined
      : 'everything else (kernel threads, other processes)';
  // runsc re-executes itself ("exe"); its sandbox and gofer processes die as orphans, reaped by PID 1.
  const engineComm = ['exe', 'runsc', 'runsc-gofer', 'runsc-sandbox', 'containerd', 'containerd-shim', 'dockerd', 'runsc-monitor'];
  if (engineComm.includes(p.comm) || pid === '1') return 'containers: runsc, containerd, dockerd (and runsc processes reaped by PID 1)';
  return 'everything else (kernel threads, other processes)';
}

/** Starts counting; the returned function gives CPU ms per `n` validations by group, largest first. */
export function startCpuCount(): (n: number) => [string, number][] {
  const before = cpuTicks();
  const engineBefore = ENGINE_CGROUP ? [cpuacctNs(ENGINE_CGROUP), cpuacctNs(`${ENGINE_CGROUP}/containers`)] : [];
  const hz = 100; // USER_HZ on Linux
  return (n) => {
    const sums = new Map<string, number>();
    const after = cpuTicks();
    const add = (key: string, p: ProcCpu, ticks: number) => {
      const g = group(key.split(' ')[0], p);
      if (g) sums.set(g, (sums.get(g) ?? 0) + (ticks * 1000) / hz);
    };
    for (const [key, p] of after) add(key, p, p.ticks - (before.get(key)?.ticks ?? 0));
    // A process that ended meanwhile handed its whole life's CPU to its reaper: take off the part before the start.
    for (const [key, p] of before) if (!after.has(key)) add(key, p, -p.ticks);
    if (ENGINE_CGROUP) {
      const all = (cpuacctNs(ENGINE_CGROUP) - engineBefore[0]) / 1e6;
      const containers = (cpuacctNs(`${ENGINE_CGROUP}/containers`) - engineBefore[1]) / 1e6;
      sums.set(SANDBOXES, containers);
      sums.set(ENGINE, all - containers);
    }
    return [...sums].map(([g, ms]): [string, number] => [g, ms / n]).sort((a, b) => b[1] - a[1]);
  };
}
