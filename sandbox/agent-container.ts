/**
 * One sandbox container with its agent, attached over stdin/stdout. Only stdout lines carrying a
 * valid HMAC (keyed by a secret sent before any user code exists) count as reports; anything
 * else is counted as a forgery attempt and ignored. Under runsc a syscall monitor reads gVisor's
 * record of refused system calls for this container; the first refusal ends the container at once
 * (fail closed: the process may have blocked SIGSYS and lived on).
 */
import crypto from 'node:crypto';
import os from 'node:os';
import type { Duplex } from 'node:stream';
import type Docker from 'dockerode';
import type { SandboxLimits } from './limits';
import type { SandboxLogger as Logger } from './logger';
import { AttachDemuxer } from './attach-stream';
import type { SandboxRuntime } from './engine';
import { SandboxInfraError } from './errors';
import { containerSpec, LABEL_INSTANCE, LABEL_KIND, LAYER_PATH, specRecord, type ContainerKind } from './spec';
import { oomKillRecorded } from './oom-record';
import { SyscallMonitor } from './syscall-monitor';
import type { ContainerExit, ContainerSpecRecord, DependencyLayer, HostStopReason, SyscallEvent } from './types';

export type Frame = { type: string; id?: string } & Record<string, unknown>;

export type ExitInfo = ContainerExit;

const SIGNAL_NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(os.constants.signals)) if (!SIGNAL_NAMES.has(n)) SIGNAL_NAMES.set(n, name); // SIGIO, not SIGPOLL

/** What a container's exit status says about PID 1 (the agent); 128+N is "killed by signal N". */
export function describeExitCode(code: number | null): string {
  if (code === null) return 'ended with an unknown status';
  if (code > 128 && code < 128 + 65) return `PID 1 was killed by ${SIGNAL_NAMES.get(code - 128) ?? `signal ${code - 128}`}`;
  return `exited with status ${code}`;
}

/** Largest authenticated line we accept: results are capped inside, this bounds a broken agent. */
const MAX_LINE_BYTES = 64 * 1024 * 1024;
const READY_TIMEOUT_MS = 20000;
/** How long a container that made a forbidden system call may go on during a request (see onRefusedSyscall). */
const REFUSAL_GRACE_MS = 1000;

export class AgentExitedError extends Error {
  constructor(readonly exit: ExitInfo) {
    super(`sandbox agent exited (status ${exit.code}${exit.oomKilled ? ', OOM-killed' : ''})`);
    this.name = 'AgentExitedError';
  }
}

interface Pending {
  done: string;
  resolve: (f: Frame) => void;
  reject: (e: Error) => void;
  onFrame?: (f: Frame) => void;
}

export interface StartOptions {
  image: string;
  runtime: SandboxRuntime;
  limits: SandboxLimits;
  kind: ContainerKind;
  instance: string;
  warm: boolean;
  log: Logger;
  /** runsc's monitor directory (engine.ts); absent: no syscall monitor (runc). */
  monitorDir?: string;
  /** Mounted read-only at LAYER_PATH and put on the handler's path (never on a checker container). */
  layer?: DependencyLayer;
}

export class AgentContainer {
  forgedFrames = 0;
  uses = 0;
  /** The file version the agent's child last loaded fine: the agent does not report a load it skips. */
  loadedSha?: string;
  /** How far loading that version raised the child's peak memory (see NEAR_MEMORY_LIMIT). */
  loadMemoryKiB = 0;
  lastUsedAt = Date.now();
  private pending = new Map<string, Pending>();
  private stderrTail = '';
  private exitInfo?: ExitInfo;
  private readonly exited: Promise<ExitInfo>;
  private seq = 0;
  private stoppedByHost?: HostStopReason;
  private refusalTimer?: NodeJS.Timeout;

  private constructor(
    readonly container: Docker.Container,
    private readonly stream: Duplex,
    private readonly key: Buffer,
    readonly spec: ContainerSpecRecord,
    private readonly log: Logger,
    private readonly monitor?: SyscallMonitor,
    /** The dependency layer mounted in this container: it serves runs of that layer only. */
    readonly layer?: DependencyLayer,
  ) {
    monitor?.onEvent((e) => this.onRefusedSyscall(e));
    const demux = new AttachDemuxer(
      {
        line: (line) => this.onLine(line),
        stderr: (chunk) => {
          this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-4000);
        },
        oversized: () => {
          this.log.warn('sandbox agent sent an oversized line; killing the container', { container: this.id.slice(0, 12) });
          void this.kill('oversized_report');
        },
      },
      MAX_LINE_BYTES,
    );
    stream.on('data', (chunk: Buffer) => demux.push(chunk));
    stream.on('error', () => undefined);
    this.exited = container
      .wait()
      .then(async (res: { StatusCode?: number }) => this.describeExit(res.StatusCode ?? null))
      .catch(async () => this.describeExit(null));
    void this.exited.then((info) => {
      this.exitInfo = info;
      clearTimeout(this.refusalTimer);
      this.monitor?.drain();
      for (const p of this.pending.values()) p.reject(new AgentExitedError(info));
      this.pending.clear();
    });
  }

  get id(): string {
    return this.container.id;
  }

  get agentLog(): string {
    return this.stderrTail;
  }

  /** Running and not being killed by us (a kill takes a moment to show as an exit). */
  get isAlive(): boolean {
    return this.exitInfo === undefined && !this.stoppedByHost;
  }

  static async start(docker: Docker, o: StartOptions): Promise<AgentContainer> {
    const opts = containerSpec(o.image, o.runtime, o.limits, { [LABEL_INSTANCE]: o.instance, [LABEL_KIND]: o.kind }, o.layer);
    let container: Docker.Container | undefined;
    let monitor: SyscallMonitor | undefined;
    try {
      container = await docker.createContainer(opts);
      // Before start: the runtime wrapper hands the pipe to runsc when it creates the sandbox.
      if (o.monitorDir) monitor = await SyscallMonitor.open(o.monitorDir, container.id, o.log);
      const stream = (await container.attach({
        stream: true,
        stdin: true,
        stdout: true,
        stderr: true,
        hijack: true,
      })) as unknown as Duplex;
      await container.start();
      monitor?.started();
      const key = crypto.randomBytes(32);
      const spec = specRecord(container.id, opts, o.limits, o.warm, monitor !== undefined);
      const agent = new AgentContainer(container, stream, key, spec, o.log, monitor, o.layer);
      await agent.handshake(o.kind === 'checker' ? 'checker' : 'run', o.layer ? LAYER_PATH : undefined);
      return agent;
    } catch (err) {
      monitor?.close();
      if (container) await container.remove({ force: true }).catch(() => undefined);
      if (err instanceof SandboxInfraError) throw err;
      throw new SandboxInfraError(`starting a sandbox container failed: ${(err as Error).message}`, err);
    }
  }

  private async handshake(role: 'checker' | 'run', layerPath?: string): Promise<void> {
    const ready = this.waitFor('ready');
    this.write({ type: 'hello', key: this.key.toString('hex'), role, ...(layerPath ? { layer_path: layerPath } : {}) });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new SandboxInfraError('sandbox agent did not become ready in time')), READY_TIMEOUT_MS);
    });
    try {
      await Promise.race([ready, timeout]);
    } catch (err) {
      throw new SandboxInfraError(`sandbox agent failed to start: ${(err as Error).message}; agent log: ${this.stderrTail.slice(-500)}`);
    } finally {
      clearTimeout(timer);
    }
  }

  private waitFor(type: string, id = ''): Promise<Frame> {
    return new Promise((resolve, reject) => this.pending.set(id || type, { done: type, resolve, reject }));
  }

  private write(msg: unknown): void {
    this.stream.write(JSON.stringify(msg) + '\n');
  }

  private onLine(line: Buffer): void {
    const frame = this.authenticate(line);
    if (!frame) {
      this.forgedFrames++;
      return;
    }
    const p = this.pending.get(frame.id ?? frame.type) ?? this.pending.get(frame.type);
    if (!p) return;
    if (frame.type === p.done) {
      this.pending.delete(frame.id ?? frame.type);
      p.resolve(frame);
    } else {
      p.onFrame?.(frame);
    }
  }

  private authenticate(line: Buffer): Frame | undefined {
    const sp = line.indexOf(0x20);
    if (sp !== 64) return undefined;
    const tag = Buffer.from(line.subarray(0, 64).toString('latin1'), 'hex');
    const body = line.subarray(65);
    const expect = crypto.createHmac('sha256', this.key).update(body).digest();
    if (tag.length !== expect.length || !crypto.timingSafeEqual(tag, expect)) return undefined;
    try {
      const frame = JSON.parse(body.toString('utf8')) as Frame;
      return typeof frame === 'object' && frame !== null && typeof frame.type === 'string' ? frame : undefined;
    } catch {
      return undefined;
    }
  }

  /** Sends a request and resolves with its `done` frame; intermediate frames go to `onFrame`. */
  request(msg: Record<string, unknown>, done: string, onFrame?: (f: Frame) => void): Promise<Frame> {
    if (this.exitInfo) return Promise.reject(new AgentExitedError(this.exitInfo));
    const id = `r${++this.seq}`;
    const result = new Promise<Frame>((resolve, reject) => this.pending.set(id, { done, resolve, reject, onFrame }));
    this.write({ ...msg, id });
    return result;
  }

  /**
   * OOM only when the engine or the kernel says so: exit 137 alone is any SIGKILL of PID 1, and under
   * runsc's systrap platform an OOM kill of PID 1's address space ends the container with status 1.
   * Docker records OOMKilled from an asynchronous event that can land after `wait` returns (or,
   * under runsc, not at all), so an unexplained end is checked against the kernel's record of
   * memory-cgroup OOM kills (oom-record.ts) and asked about a few times before it counts as a crash.
   */
  private async describeExit(code: number | null): Promise<ExitInfo> {
    // Removed by the host after its use: nobody reads this, and asking the engine would cost each container a call.
    if (this.stoppedByHost === 'teardown')
      return { code, oomKilled: false, stoppedByHost: 'teardown', description: 'stopped by the host (teardown)' };
    let exitCode = code;
    let oomKilled = false;
    let kernelAsked = false;
    for (let i = 0; i < 5; i++) {
      try {
        const state = (await this.container.inspect()).State;
        exitCode = state.ExitCode ?? code;
        oomKilled = state.OOMKilled === true;
      } catch {
        break;
      }
      if (oomKilled || exitCode === 0 || this.stoppedByHost) break;
      // The kernel records a kill before the process is gone: asked once (its log may be long to read).
      if (!kernelAsked) {
        kernelAsked = true;
        if (oomKillRecorded(this.container.id)) {
          oomKilled = true;
          break;
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const description = oomKilled
      ? 'killed by the memory cgroup (OOM)'
      : this.stoppedByHost
        ? `stopped by the host (${this.stoppedByHost.replace(/_/g, ' ')})`
        : describeExitCode(exitCode);
    return { code: exitCode, oomKilled, ...(this.stoppedByHost ? { stoppedByHost: this.stoppedByHost } : {}), description };
  }

  /**
   * gVisor refused a system call in this container: it is done, whatever it does next (the process
   * may have blocked SIGSYS and lived on). Idle, it stops at once; during a request, after a short
   * grace in which the agent can report the SIGSYS ending (which payload it was).
   */
  private onRefusedSyscall(e: SyscallEvent): void {
    this.log.warn('sandbox made a forbidden system call; stopping the container', {
      container: this.id.slice(0, 12),
      syscall: e.syscall,
      pid: e.pid,
      tid: e.tid,
    });
    if (this.pending.size === 0) void this.kill('forbidden_syscall');
    else this.refusalTimer ??= setTimeout(() => void this.kill('forbidden_syscall'), REFUSAL_GRACE_MS).unref();
  }

  /**
   * Whether the kernel says the container's memory cgroup OOM-killed one of its processes. Asked
   * when the handler's process ended under a call while the container lives on: under systrap the
   * kernel kills the host process behind the handler's address space, and gVisor reports that
   * process as exited with status 1.
   */
  memoryCgroupKilled(): boolean {
    return oomKillRecorded(this.container.id);
  }

  /** Every system call gVisor refused in this container so far (after reading what is pending). */
  refusedSyscalls(): SyscallEvent[] {
    this.monitor?.drain();
    return this.monitor ? [...this.monitor.events] : [];
  }

  /** Bytes of gVisor debug log read for this container (what monitoring costs in traffic). */
  get monitorBytes(): number {
    return this.monitor?.bytes ?? 0;
  }

  /** Waits for the container to end (after a kill or a crash) and says how it ended. */
  waitExit(): Promise<ExitInfo> {
    return this.exited;
  }

  async kill(reason: HostStopReason): Promise<void> {
    if (this.exitInfo) return;
    this.stoppedByHost ??= reason;
    await this.container.kill({ signal: 'SIGKILL' }).catch(() => undefined);
  }

  /** Kills (if running) and removes the container; safe to call twice. */
  async destroy(): Promise<void> {
    this.stoppedByHost ??= 'teardown';
    this.stream.destroy();
    await this.container.remove({ force: true }).catch(() => undefined);
    this.monitor?.close();
  }
}
