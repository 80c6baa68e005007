/**
 * The host's view of the system calls gVisor refused in one container. gVisor logs each refusal of
 * its seccomp layer (`Syscall 41: denied by seccomp`) at debug level; runsc 20221219 has no per-
 * container log path, so the runtime wrapper (scripts/runsc-monitor.sh) sends the sandbox's debug
 * log into a named pipe this module creates for the container before it starts. Nothing reaches
 * the disk: lines are parsed as they arrive (~150 KB at each start, almost all gVisor's own set-up)
 * and only the refusals are kept.
 *
 * gVisor writes the line before the refused call returns, so anything that happened before the
 * agent's report was sent is in the pipe by the time the report arrives: `drain()` reads it.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { processStartTime } from './leftovers';
import type { SandboxLogger as Logger } from './logger';
import { syscallMeaning, syscallName, SYSCALLS } from './syscalls';
import type { SyscallEvent } from './types';

const FIFO = 'debug.fifo';

/** Whether the process named in a `reader` file (`pid start-time`) still runs. */
function readerAlive(file: string): boolean {
  try {
    const [pid, start] = fs.readFileSync(file, 'utf8').trim().split(' ');
    return /^[0-9]+$/.test(pid) && processStartTime(Number(pid)) === start;
  } catch {
    return false;
  }
}
const CONTAINER_ID = /^[0-9a-f]{64}$/;
/** `D1129 09:05:18.702642   17386 task_syscall.go:240] [   2:   4] Syscall 41: denied by seccomp` ([tgid: tid]). */
const REFUSAL =
  /^[DIWEF]\d{4} [\d:.]+ +\d+ \w+\.go:\d+\] \[ *(\d+): *(\d+)\] (?:Syscall|vsyscall) (\d+)(?:, caller \S+)?: (denied|killed) by seccomp$/;
/** The child's filter answers clone3 with ENOSYS on purpose (threads then use clone): not an attempt. */
const CLONE3 = SYSCALLS.clone3.nr;
const MAX_LINE = 64 * 1024;
/** drain() reads into this; one per process is enough (Node runs one drain at a time). */
const DRAIN_BUF = Buffer.allocUnsafe(16 * 1024);
const MAX_EVENTS = 100;
/** A monitor directory survives only a crash between creating a container and starting it. */
const STALE_MS = 10 * 60 * 1000;

export class SyscallMonitor {
  readonly events: SyscallEvent[] = [];
  /** Bytes of debug log read (what monitoring costs in traffic). */
  bytes = 0;
  private buf = '';
  private closed = false;
  private listener?: (e: SyscallEvent) => void;
  private readonly socket: net.Socket;

  /**
   * Two read ends of the same pipe: `socket` owns one (and closes it when the writer goes);
   * `fd` is ours alone for `drain()`, so it can never name a descriptor reused by someone else.
   */
  private constructor(
    private readonly dir: string,
    socketFd: number,
    private readonly fd: number,
    private readonly log: Logger,
  ) {
    this.socket = new net.Socket({ fd: socketFd, readable: true, writable: false });
    this.socket.setEncoding('latin1');
    this.socket.on('data', (chunk: string) => this.take(chunk));
    this.socket.on('error', (err) => this.log.warn('syscall monitor pipe failed', { error: err.message }));
  }

  /** Prepares the pipe for container `containerId` (created, not started) under `root`. */
  static async open(root: string, containerId: string, log: Logger): Promise<SyscallMonitor> {
    if (!CONTAINER_ID.test(containerId)) throw new Error(`unexpected container id ${JSON.stringify(containerId)}`);
    await fs.promises.mkdir(root, { recursive: true, mode: 0o700 });
    const dir = path.join(root, containerId);
    await fs.promises.mkdir(dir, { mode: 0o700 });
    const fds: number[] = [];
    try {
      // Who reads the pipe: the wrapper uses it only while this process lives (a pipe nobody reads
      // would block runsc's create for ever).
      await fs.promises.writeFile(path.join(dir, 'reader'), `${process.pid} ${processStartTime(process.pid) ?? ''}\n`, { mode: 0o600 });
      const fifo = path.join(dir, FIFO);
      await promisify(execFile)('mkfifo', ['-m', '0600', fifo]);
      // O_NONBLOCK: opening a pipe's read end then never waits for a writer.
      const flags = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW;
      fds.push(fs.openSync(fifo, flags));
      fds.push(fs.openSync(fifo, flags));
      return new SyscallMonitor(dir, fds[0], fds[1], log);
    } catch (err) {
      for (const fd of fds) fs.closeSync(fd);
      await fs.promises.rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Called for each refusal as it arrives. */
  onEvent(listener: (e: SyscallEvent) => void): void {
    this.listener = listener;
  }

  /** The container started: runsc holds the pipe's write end, so the path is no longer needed. */
  started(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Reads what is in the pipe right now, without waiting. */
  drain(): void {
    while (!this.closed) {
      let n: number;
      try {
        n = fs.readSync(this.fd, DRAIN_BUF, 0, DRAIN_BUF.length, null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN')
          this.log.warn('syscall monitor read failed', { error: (err as Error).message });
        return;
      }
      if (n <= 0) return;
      this.take(DRAIN_BUF.toString('latin1', 0, n));
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy(); // closes its descriptor
    fs.closeSync(this.fd);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private take(chunk: string): void {
    this.bytes += chunk.length;
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      const m = REFUSAL.exec(line);
      if (m) this.refused(Number(m[1]), Number(m[2]), Number(m[3]), m[4]);
    }
    if (this.buf.length > MAX_LINE) this.buf = ''; // no refusal line is that long
  }

  private refused(pid: number, tid: number, nr: number, verdict: string): void {
    if (nr === CLONE3 && verdict === 'denied') return;
    const name = syscallName(nr);
    const event: SyscallEvent = { syscall: name, nr, meaning: syscallMeaning(name), pid, tid };
    if (this.events.length < MAX_EVENTS) this.events.push(event);
    this.listener?.(event);
  }

  /** Removes monitor directories left by a crash (another live process's are young and kept). */
  /**
   * A process killed while one of its containers was being created leaves runsc's `create` blocked
   * opening a pipe nobody reads, and `docker rm -f` of that container waits on it. Read (and drop)
   * those pipes while the leftovers are removed; returns the function that stops reading.
   */
  static rescueOrphans(root: string, log: Logger): () => void {
    let names: string[];
    try {
      names = fs.readdirSync(root).filter((n) => CONTAINER_ID.test(n));
    } catch {
      return () => undefined;
    }
    const readers: net.Socket[] = [];
    for (const name of names) {
      const dir = path.join(root, name);
      if (readerAlive(path.join(dir, 'reader'))) continue;
      const fifo = path.join(dir, FIFO);
      try {
        if (!fs.lstatSync(fifo).isFIFO()) continue;
        const fd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
        const reader = new net.Socket({ fd, readable: true, writable: false });
        reader.on('data', () => undefined).on('error', () => undefined);
        readers.push(reader);
      } catch {
        // No pipe there: nothing can be blocked on it.
      }
    }
    if (readers.length)
      log.info('reading the syscall pipes of dead processes so their containers can be removed', { count: readers.length });
    return () => readers.forEach((r) => r.destroy());
  }

  static async sweep(root: string, log: Logger): Promise<void> {
    let names: string[];
    try {
      names = await fs.promises.readdir(root);
    } catch {
      return;
    }
    const now = Date.now();
    for (const name of names.filter((n) => CONTAINER_ID.test(n))) {
      const dir = path.join(root, name);
      const st = await fs.promises.lstat(dir).catch(() => undefined);
      if (st && now - st.mtimeMs > STALE_MS) {
        await fs.promises.rm(dir, { recursive: true, force: true });
        log.info('removed a stale syscall monitor directory', { dir });
      }
    }
  }
}
