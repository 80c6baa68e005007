/**
 * The kernel's own record of a memory-cgroup OOM kill. Docker sets `State.OOMKilled` from an event
 * that, under runsc on these machines, sometimes never arrives (about one memory bomb in twelve
 * under load: exit 137, OOMKilled false, while the kernel logged the kill). And under runsc's
 * systrap platform (20240729) the kernel's choice is usually not the container's PID 1 but the host
 * stub process behind one sandboxed address space: the handler's process inside gVisor then ends
 * with status 1 (not a signal), the container lives on, and Docker says nothing but an `oom` event.
 * So an unexplained end is checked against the kernel: the container's memory cgroup counts its OOM
 * kills (`oom_kill` in memory.oom_control, v1, or memory.events, v2) while the container lives,
 * and the kernel log names each kill's cgroup (`oom-kill:...,oom_memcg=/docker/<container id>,...`).
 * Reading /dev/kmsg needs root (or CAP_SYSLOG); without it the answer is "no record".
 */
import fs from 'node:fs';

/**
 * The files counting OOM kills of the memory cgroup of a process of container `id` (whatever the
 * cgroup driver or parent: the cgroup is found from the container's processes, whose cgroup path
 * ends in its id), or [] when no process of it is left.
 */
function counterFiles(id: string): string[] {
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    } catch {
      continue;
    }
    const v1 = /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(.*)$/m.exec(text)?.[1];
    if (v1?.includes(id)) return [`/sys/fs/cgroup/memory${v1}/memory.oom_control`];
    const v2 = /^0::(.*)$/m.exec(text)?.[1];
    if (!v1 && v2?.includes(id)) return [`/sys/fs/cgroup${v2}/memory.events`];
  }
  return [];
}

/**
 * OOM kills the memory cgroup of (running) container `containerId` has counted, or undefined when
 * this host shows no such cgroup (the container is gone, or its processes are out of sight).
 */
export function memoryCgroupOomKills(containerId: string): number | undefined {
  if (!/^[0-9a-f]{12,64}$/.test(containerId)) return undefined;
  for (const file of counterFiles(containerId)) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    const m = /^oom_kill (\d+)$/m.exec(text);
    if (m) return Number(m[1]);
  }
  return undefined;
}

/** Whether the kernel says its memory cgroup OOM-killed a process of container `containerId`: its counter, else its log. */
export function oomKillRecorded(containerId: string): boolean {
  const kills = memoryCgroupOomKills(containerId);
  return kills !== undefined ? kills > 0 : kernelRecordsOomKill(containerId);
}

const RECORD = Buffer.alloc(8192); // one /dev/kmsg read returns one record (at most ~1 KiB)
const MAX_RECORDS = 100000;

/** Whether the kernel log holds an OOM kill in the memory cgroup of container `containerId`. */
export function kernelRecordsOomKill(containerId: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync('/dev/kmsg', fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    for (let i = 0; i < MAX_RECORDS; i++) {
      let n: number;
      try {
        n = fs.readSync(fd, RECORD, 0, RECORD.length, null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EPIPE') continue; // overwritten while reading: skip it
        return false; // EAGAIN: the end of the log
      }
      if (n <= 0) return false;
      const line = RECORD.toString('latin1', 0, n);
      if (line.includes('oom-kill:') && line.includes(`oom_memcg=`) && line.includes(containerId)) return true;
    }
    return false;
  } finally {
    fs.closeSync(fd);
  }
}
