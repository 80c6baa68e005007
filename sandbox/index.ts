/** Public surface of the sandbox runtime. Activities and the CLI use only what is exported here. */
import fs from 'node:fs';
import path from 'node:path';
import type { SandboxConfig } from './config';
import { DEFAULT_CHECK_MAX_BYTES, sameContainerLimits, type SandboxLimits } from './limits';
import type { SandboxLogger as Logger } from './logger';
import { AgentContainer } from './agent-container';
import { connectDocker, verifyEngine, type RunscInfo } from './engine';
import { SandboxCancelledError, SandboxInfraError } from './errors';
import { ensureImage } from './image';
import { instanceId, removeLeftovers, removeOwn } from './leftovers';
import { CheckerPool } from './checker-pool';
import { SyscallMonitor } from './syscall-monitor';
import { KeyedPool, WarmPool, type StartContainer } from './pool';
import { checkOnAgent, reusable, runOnAgent, sha256 } from './runner';
import type { CheckOutcome, DependencyLayer, RunOutcome, RunRequest } from './types';
import type { PoolStats, RunKind, RunResult, SandboxHealth, SandboxObserver } from './observer';

export * from './types';
export type { PoolStats, RunKind, RunResult, SandboxHealth, SandboxObserver } from './observer';
export * from './limits';
export type { SandboxConfig } from './config';
export type { RunscInfo } from './engine';
export type { SandboxLogger } from './logger';
export { sha256Hex } from './hash';
export { SandboxInfraError, EngineUnavailableError, SandboxCancelledError } from './errors';
export { sha256, NEAR_MEMORY_LIMIT } from './runner';
/** Where a run's dependency layer appears inside the sandbox (for byte-compiling it with matching paths). */
export { LAYER_PATH } from './spec';

/** Checks one checker container serves before it is replaced (hygiene: nothing long-lived stays long). */
const CHECKER_MAX_CHECKS = 1000;

export interface OwnerFileKey {
  owner: string;
  sha256: string;
}

export interface CheckRequest {
  source: Buffer | string;
  fileName: string;
  maxBytes?: number;
  policy?: Record<string, 'error' | 'warning' | 'off'>;
  signal?: AbortSignal;
}

export interface Sandbox {
  /** The image tag in use (content-hashed). */
  readonly image: string;
  readonly runtime: 'runsc' | 'runc';
  /** Under runsc: the binary's release and platform (engine.ts). */
  readonly runsc?: RunscInfo;
  /** Static check in a long-lived checker container (the file is parsed, never run: sandbox/checker-pool.ts). */
  check(req: CheckRequest): Promise<CheckOutcome>;
  /** Validation run: a single-use container (a warm one from the pool unless the run has a layer), destroyed afterwards. */
  validate(req: RunRequest): Promise<RunOutcome>;
  /** Production run: a container reused only for the same owner, file sha256 and dependency layer. */
  runKeyed(key: OwnerFileKey, req: RunRequest): Promise<RunOutcome>;
  /** `docker run --rm` style: a container started for this run alone, no pool. */
  runCold(req: RunRequest): Promise<RunOutcome>;
  /** How many containers the pools hold now. */
  stats(): PoolStats;
  /** Whether the engine answers (within `timeoutMs`) with the runtime in use, and container starts succeed. */
  health(timeoutMs?: number): Promise<SandboxHealth>;
  /** Stops refills and removes every container this process created. */
  close(): Promise<void>;
}

export interface SandboxOptions {
  /** Keep single-use validation containers warm (size from config). */
  validationPool?: boolean;
  /** Keep a keyed pool for production runs, with these limits: the container limits must be the config's (validation's). */
  keyedLimits?: SandboxLimits;
  /** Told about container starts and finished runs (metrics). */
  observer?: SandboxObserver;
  /**
   * Read gVisor's record of refused system calls (default true). Only benchmarks turn it off, to
   * measure what it costs: without it a refused call still fails, and SIGSYS still ends the
   * handler's process, but a call the process survives goes unreported.
   */
  syscallMonitor?: boolean;
}

const seconds = (since: number) => (performance.now() - since) / 1000;

/** The first symbolic link under `dir`, if any (iterative: a layer may be deep). */
function findLink(dir: string): string | undefined {
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop()!;
    for (const ent of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, ent.name);
      if (ent.isSymbolicLink()) return p;
      if (ent.isDirectory()) stack.push(p);
    }
  }
  return undefined;
}

/**
 * A layer must be an absolute path to a directory on this host (the caller builds it there first)
 * holding no symbolic links: wheels cannot hold any, and the child's audit hook judges paths under
 * the layer as written (it does not resolve them there). Checked once per layer directory and id.
 */
function layerChecker(): (layer: DependencyLayer) => void {
  const checked = new Set<string>();
  return (layer) => {
    if (!/^[0-9a-f]{64}$/.test(layer.id)) throw new Error(`dependency layer id must be a sha256 in hex, not ${JSON.stringify(layer.id)}`);
    if (!path.isAbsolute(layer.hostDir)) throw new Error(`dependency layer directory must be absolute: ${layer.hostDir}`);
    let isDir = false;
    try {
      isDir = fs.statSync(layer.hostDir).isDirectory();
    } catch {
      isDir = false;
    }
    if (!isDir) throw new SandboxInfraError(`dependency layer ${layer.id.slice(0, 12)} is not on this host: ${layer.hostDir}`);
    const key = `${layer.id} ${layer.hostDir}`;
    if (checked.has(key)) return;
    const link = findLink(layer.hostDir);
    if (link) throw new SandboxInfraError(`dependency layer ${layer.id.slice(0, 12)} holds a symbolic link (${link}); layers hold none`);
    checked.add(key);
  };
}

/**
 * Verifies the engine (and runsc), builds the image if its inputs changed, removes leftover
 * containers of dead processes, and fills the pools asked for.
 */
export async function createSandbox(cfg: SandboxConfig, log: Logger, opts: SandboxOptions = {}): Promise<Sandbox> {
  const docker = connectDocker(cfg);
  const engine = await verifyEngine(docker, cfg, log);
  const runtime = engine.runtime;
  const monitorDir = opts.syscallMonitor === false ? undefined : engine.monitorDir;
  if (opts.syscallMonitor === false) log.warn('syscall monitor off: refused system calls the handler survives go unreported');
  const image = cfg.image ?? (await ensureImage(docker, log));
  const stopRescue = engine.monitorDir ? SyscallMonitor.rescueOrphans(engine.monitorDir, log) : () => undefined;
  try {
    await removeLeftovers(docker, log);
  } finally {
    stopRescue();
  }
  if (engine.monitorDir) await SyscallMonitor.sweep(engine.monitorDir, log);
  const instance = instanceId();
  const observer = opts.observer;
  let lastStartError: string | undefined;
  const checkLayer = layerChecker();
  const start: StartContainer = async (kind, limits, warm, layer) => {
    // Before the start is counted: a layer missing from this host is not the engine failing.
    if (layer) checkLayer(layer);
    const t = performance.now();
    try {
      const agent = await AgentContainer.start(docker, { image, runtime, limits, kind, instance, warm, log, monitorDir, layer });
      lastStartError = undefined;
      observer?.containerStarted(kind, warm, seconds(t), true);
      return agent;
    } catch (err) {
      lastStartError = (err as Error).message;
      observer?.containerStarted(kind, warm, seconds(t), false);
      throw err;
    }
  };
  /** Times a check or a run for the observer, from taking a container to the outcome. */
  const observed = async <T extends { ok: boolean } | { status: string }>(kind: RunKind, work: () => Promise<T>): Promise<T> => {
    const t = performance.now();
    let result: RunResult = 'error';
    try {
      const outcome = await work();
      result = ('status' in outcome ? outcome.status === 'ok' : outcome.ok) ? 'ok' : 'failed';
      return outcome;
    } catch (err) {
      if (err instanceof SandboxCancelledError) result = 'cancelled';
      throw err;
    } finally {
      observer?.runFinished(kind, seconds(t), result);
    }
  };

  const validationPool = new WarmPool(start, 'validation', cfg.limits, opts.validationPool ? cfg.poolSize : 0, log);
  validationPool.fill();
  const checkers = new CheckerPool(() => start('checker', cfg.limits, true), cfg.checkerContainers, CHECKER_MAX_CHECKS, log);
  // A validation worker checks every upload: have them ready. Others (the CLI) start one on first use.
  if (opts.validationPool) checkers.fill();
  if (opts.keyedLimits && !sameContainerLimits(opts.keyedLimits, cfg.limits)) {
    // A production container unlike a validation one would let a file behave only while validated.
    throw new SandboxInfraError("keyed (production) containers must have the validation containers' limits");
  }
  const keyedPool = opts.keyedLimits
    ? new KeyedPool(
        start,
        opts.keyedLimits,
        {
          maxContainers: cfg.keyedPoolMax,
          maxUses: cfg.keyedMaxUses,
          idleTtlMs: cfg.keyedIdleTtlMs,
          spares: Math.min(cfg.poolSize, cfg.keyedPoolMax),
        },
        log,
      )
    : undefined;

  // Removing a runsc container takes ~150 ms: do it off the caller's path, but never lose track.
  const removals = new Set<Promise<void>>();
  const discard = (agent: AgentContainer): void => {
    const p = agent.destroy().finally(() => removals.delete(p));
    removals.add(p);
  };
  const once = async (agent: AgentContainer, req: RunRequest, limits: SandboxLimits): Promise<RunOutcome> => {
    try {
      return await runOnAgent(agent, req, limits);
    } finally {
      discard(agent);
    }
  };

  const runsc = engine.runsc;
  const runscHealth = runsc ? { runsc: { version: runsc.version, platform: runsc.platform } } : {};
  return {
    image,
    runtime,
    ...(runsc ? { runsc } : {}),
    check: (req) =>
      observed('check', async () => {
        const agent = await checkers.acquire();
        const source = typeof req.source === 'string' ? Buffer.from(req.source, 'utf8') : req.source;
        try {
          return await checkOnAgent(agent, source, req.fileName, {
            maxBytes: req.maxBytes ?? DEFAULT_CHECK_MAX_BYTES,
            timeoutMs: cfg.limits.payloadTimeoutMs,
            policy: req.policy,
            signal: req.signal,
          });
        } finally {
          // A timed-out, cancelled or crashed check took its container down with it: the pool replaces it.
          checkers.release(agent, agent.forgedFrames === 0);
        }
      }),
    validate: (req) =>
      observed('validation', async () => {
        const limits = { ...cfg.limits, ...req.limits };
        // A layer is mounted when a container is created: warm ones have none.
        const agent =
          sameContainerLimits(limits, cfg.limits) && !req.layer
            ? await validationPool.acquire()
            : await start('validation', limits, false, req.layer);
        return once(agent, req, limits);
      }),
    runKeyed: (key, req) =>
      observed('keyed', async () => {
        if (!keyedPool) throw new Error('this sandbox was created without a keyed pool');
        if (sha256(req.source) !== key.sha256) throw new Error('runKeyed: source does not match the key sha256');
        const limits = { ...keyedPool.limits, ...req.limits };
        if (!sameContainerLimits(limits, keyedPool.limits)) return once(await start('keyed', limits, false, req.layer), req, limits);
        const poolKey = `${key.owner}/${key.sha256}/${req.layer?.id ?? ''}`;
        const agent = await keyedPool.acquire(poolKey, req.layer);
        let outcome: RunOutcome | undefined;
        try {
          outcome = await runOnAgent(agent, req, limits);
          return outcome;
        } finally {
          keyedPool.release(poolKey, agent, outcome !== undefined && reusable(agent, outcome));
        }
      }),
    runCold: (req) =>
      observed('cold', async () => {
        const limits = { ...cfg.limits, ...req.limits };
        return once(await start('cold', limits, false, req.layer), req, limits);
      }),
    stats: () => ({
      validation: { ready: validationPool.readyCount, starting: validationPool.startingCount },
      checker: checkers.stats(),
      ...(keyedPool ? { keyed: keyedPool.stats() } : {}),
    }),
    async health(timeoutMs = 2000) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        const info = (await Promise.race([docker.info(), timeout])) as { Runtimes?: Record<string, unknown> };
        if (!Object.keys(info.Runtimes ?? {}).includes(runtime)) {
          return {
            engine: false,
            runtime,
            ...runscHealth,
            lastStartFailed: lastStartError !== undefined,
            problem: `the engine no longer offers the ${runtime} runtime`,
          };
        }
        return {
          engine: true,
          runtime,
          ...runscHealth,
          lastStartFailed: lastStartError !== undefined,
          ...(lastStartError ? { problem: `container start failed: ${lastStartError}` } : {}),
        };
      } catch (err) {
        return {
          engine: false,
          runtime,
          ...runscHealth,
          lastStartFailed: lastStartError !== undefined,
          problem: `Docker engine: ${(err as Error).message}`,
        };
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      await Promise.all([validationPool.close(), checkers.close(), keyedPool?.close(), ...removals]);
      await removeOwn(docker, log, instance);
    },
  };
}
