/**
 * What one sandbox container costs the host in memory, read from /proc: its runsc processes (the
 * sandbox, i.e. gVisor's kernel, and the gofer that serves it files), the systrap stub processes
 * behind the sandboxed address spaces (children of the sandbox), and, apart, the containerd shim.
 * RSS counts pages shared with other processes (the runsc binary's text) in full; PSS shares them
 * out; private (USS) is what removing the container would give back.
 */
import fs from 'node:fs';

export interface ProcessMemory {
  pid: number;
  role: 'sandbox' | 'gofer' | 'stub' | 'shim';
  rssKiB: number;
  pssKiB: number;
  privateKiB: number;
}

function read(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined; // gone meanwhile, or not ours to read
  }
}

function rollup(pid: number): Omit<ProcessMemory, 'pid' | 'role'> | undefined {
  const text = read(`/proc/${pid}/smaps_rollup`);
  if (!text) return undefined;
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
  return { rssKiB: kib('Rss'), pssKiB: kib('Pss'), privateKiB: kib('Private_Clean') + kib('Private_Dirty') };
}

/** The host processes of container `containerId` (its id or a unique prefix of it) and their memory. */
export function containerProcesses(containerId: string): ProcessMemory[] {
  const pids = fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
  const parent = new Map<number, number>();
  const found: { pid: number; role: ProcessMemory['role'] }[] = [];
  for (const pid of pids) {
    const stat = read(`/proc/${pid}/stat`);
    if (stat) parent.set(pid, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    const argv = (read(`/proc/${pid}/cmdline`) ?? '').split('\0');
    if (!argv.some((a) => a.includes(containerId))) continue;
    if (argv[0] === 'runsc-sandbox') found.push({ pid, role: 'sandbox' });
    else if (argv[0] === 'runsc-gofer') found.push({ pid, role: 'gofer' });
    else if (argv[0].includes('containerd-shim')) found.push({ pid, role: 'shim' });
  }
  const sandboxes = new Set(found.filter((p) => p.role === 'sandbox').map((p) => p.pid));
  for (const [pid, ppid] of parent) if (sandboxes.has(ppid)) found.push({ pid, role: 'stub' });
  return found.flatMap(({ pid, role }) => {
    const m = rollup(pid);
    return m ? [{ pid, role, ...m }] : [];
  });
}

/** The sum over runsc's processes (sandbox, gofer, stubs), without the shim. */
export function runscMemory(processes: ProcessMemory[]): { rssKiB: number; pssKiB: number; privateKiB: number; count: number } {
  const own = processes.filter((p) => p.role !== 'shim');
  return {
    rssKiB: own.reduce((a, p) => a + p.rssKiB, 0),
    pssKiB: own.reduce((a, p) => a + p.pssKiB, 0),
    privateKiB: own.reduce((a, p) => a + p.privateKiB, 0),
    count: own.length,
  };
}

/** The memory charged to the memory cgroup of process `pid` (a container's sandbox), in KiB, when visible (v1 or v2). */
export function cgroupUsageKiB(pid: number): number | undefined {
  const cgroups = read(`/proc/${pid}/cgroup`) ?? '';
  const v1 = /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(.*)$/m.exec(cgroups)?.[1];
  const v2 = /^0::(.*)$/m.exec(cgroups)?.[1];
  const text =
    v1 !== undefined
      ? read(`/sys/fs/cgroup/memory${v1}/memory.usage_in_bytes`)
      : v2 !== undefined
        ? read(`/sys/fs/cgroup${v2}/memory.current`)
        : undefined;
  return text ? Math.round(Number(text.trim()) / 1024) : undefined;
}
