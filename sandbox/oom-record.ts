/**
 * The kernel's own record of a memory-cgroup OOM kill. Docker sets `State.OOMKilled` from an event
 * that, under runsc on these machines, sometimes never arrives (about one memory bomb in twelve
 * under load: exit 137, OOMKilled false, while the kernel logged the kill). The kernel logs every
 * memcg OOM kill with the cgroup's path (`oom-kill:...,oom_memcg=/docker/<container id>,...`), so
 * an unexplained 137 is checked against that log before it counts as "PID 1 was killed".
 * Reading /dev/kmsg needs root (or CAP_SYSLOG); without it the answer is "no record".
 */
import fs from 'node:fs';

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
