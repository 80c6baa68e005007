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

/** Where Docker's cgroupfs and systemd drivers put a container's memory cgroup (cgroup v1, then v2). */
function counterFiles(id: string): string[] {
  return [
    `/sys/fs/cgroup/memory/docker/${id}/memory.oom_control`,
    `/sys/fs/cgroup/memory/system.slice/docker-${id}.scope/memory.oom_control`,
    `/sys/fs/cgroup/docker/${id}/memory.events`,
    `/sys/fs/cgroup/system.slice/docker-${id}.scope/memory.events`,
  ];
}

/**
 * OOM kills the memory cgroup of (running) container `containerId` (the full id) has counted, or
 * undefined when this host shows no such cgroup (the container is gone, or another cgroup layout).
 */
export function memoryCgroupOomKills(containerId: string): number | undefined {
  if (!/^[0-9a-f]{64}$/.test(containerId)) return undefined;
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
