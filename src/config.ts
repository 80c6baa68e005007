/**
 * The one place configuration is read. `loadConfig` parses an environment once, at start-up,
 * and everything else receives the typed result. Defaults are the safe ones.
 */
import path from 'node:path';
import { z } from 'zod';
import { OWNER_RE, OWNER_RULE } from '../domain/names';
import { LIMIT_DEFINITIONS, LIMIT_NAMES, type LimitDefinition, type SandboxConfig, type SandboxLimits } from '../sandbox';
import type { DatabaseConfig } from './db';
import { QUOTA_DEFINITIONS, RETENTION_DEFINITIONS, type Quotas, type Retention } from './quotas/definitions';

const int = (def: number, min = 1) => z.coerce.number().int().min(min).default(def);
const bool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no', ''])
    .default(def ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** `owner:token,owner2:token2` → [{owner, token}]. */
const apiKeys = z
  .string()
  .default('')
  .transform((raw, ctx) => {
    const keys: { owner: string; token: string }[] = [];
    for (const part of raw
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean)) {
      const i = part.indexOf(':');
      const owner = part.slice(0, i);
      const token = part.slice(i + 1);
      if (i <= 0 || !OWNER_RE.test(owner) || token.length < 16) {
        ctx.addIssue({
          code: 'custom',
          message: `each entry must be owner:token, owner being ${OWNER_RULE}, token at least 16 characters`,
        });
        return z.NEVER;
      }
      keys.push({ owner, token });
    }
    return keys;
  });

export const ROLES = ['api', 'validation-worker', 'task-worker'] as const;
export type Role = (typeof ROLES)[number];

/** `api,validation-worker,task-worker` → a non-empty list of known roles. */
const roles = z
  .string()
  .default('api,validation-worker,task-worker')
  .transform((raw, ctx) => {
    const list = [
      ...new Set(
        raw
          .split(',')
          .map((r) => r.trim())
          .filter(Boolean),
      ),
    ];
    const bad = list.filter((r) => !(ROLES as readonly string[]).includes(r));
    if (bad.length || list.length === 0) {
      ctx.addIssue({ code: 'custom', message: `a comma-separated list of ${ROLES.join(', ')} (got ${raw || 'nothing'})` });
      return z.NEVER;
    }
    return list as Role[];
  });

const EnvSchema = z.object({
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'a postgresql:// URL')
    .default('postgresql://taskflow@127.0.0.1:5432/taskflow'),
  DATABASE_POOL_MAX: int(10),
  DATABASE_TIMEOUT_MS: int(5000, 100),
  DATA_DIR: z.string().default('.data'),
  TASKS_DIR: z.string().default('worker/tasks'),
  TASK_VALIDATION_QUEUE_NAME: z.string().min(1).default('taskflow-validation'),
  TASK_QUEUE_NAME: z.string().min(1).default('taskflow-tasks'),
  TEMPORAL_ADDRESS: z.string().min(1).default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_CALL_TIMEOUT_MS: int(5000, 100),
  HOST: z.string().default('127.0.0.1'),
  PORT: int(8080, 0).pipe(z.number().max(65535)),
  OPS_PORT: z.preprocess((v) => (v === '' ? undefined : v), z.coerce.number().int().min(0).max(65535).optional()),
  MAX_UPLOAD_BYTES: int(256 * 1024),
  MAX_TASK_PAYLOAD_BYTES: int(256 * 1024),
  MAX_TEST_PAYLOADS_BYTES: int(64 * 1024),
  MAX_SCHEDULE_AHEAD_DAYS: int(366),
  HTTP_HEADERS_TIMEOUT_MS: int(10000, 100),
  HTTP_REQUEST_TIMEOUT_MS: int(60000, 100),
  TASKFLOW_API_KEYS: apiKeys,
  TASKFLOW_ROLES: roles,
  VALIDATION_HEARTBEAT_TIMEOUT_MS: int(5000, 500),
  VALIDATION_MAX_ATTEMPTS: int(5),
  VALIDATION_WORKER_CONCURRENCY: int(2),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),

  DOCKER_SOCKET: z.string().default('/var/run/docker.sock'),
  SANDBOX_IMAGE: z.string().optional(),
  SANDBOX_ALLOW_INSECURE_RUNC: bool(false),
  RUNSC_MIN_VERSION: z
    .string()
    .regex(/^\d{8}$/, 'must be a runsc release date, YYYYMMDD')
    .default('20240729')
    .transform(Number),
  SANDBOX_POOL_SIZE: int(2, 0),
  SANDBOX_CHECKER_CONTAINERS: int(1, 0),
  SANDBOX_KEYED_POOL_MAX: int(8, 0),
  SANDBOX_KEYED_MAX_USES: int(100),
  SANDBOX_KEYED_IDLE_TTL_MS: int(60000, 100),
  TASK_PAYLOAD_TIMEOUT_MS: int(30000, 100),
  TASK_WORKER_SLOTS: int(2),

  PACKAGE_INDEX_URL: z.string().url().default('https://pypi.org/simple'),
  DEPENDENCY_UV_PATH: z.string().optional(),
  DEPENDENCY_CACHE_DIR: z.string().optional(),
  DEPENDENCY_MAX_PACKAGES: int(40),
  DEPENDENCY_MAX_UNPACKED_MIB: int(200),
  DEPENDENCY_NATIVE_TLS: bool(false),
});

/** The sandbox limits' variables (SANDBOX_MEMORY_MIB, ...), made from their one definition in sandbox/limits.ts. */
const limitVar = (d: LimitDefinition) => {
  const n = z.coerce
    .number()
    .min(d.min)
    .max(d.max ?? Number.MAX_SAFE_INTEGER);
  return (d.integer ? n.int() : n).default(d.default);
};
const LimitsEnvSchema = z.object(
  Object.fromEntries(LIMIT_NAMES.map((k) => [LIMIT_DEFINITIONS[k].env, limitVar(LIMIT_DEFINITIONS[k])])),
) as unknown as z.ZodType<Record<string, number>>;

/** Per-owner quotas and retention lifetimes, made from their one definition in src/quotas/definitions.ts. */
const QuotaEnvSchema = z.object({
  ...Object.fromEntries(Object.values(QUOTA_DEFINITIONS).map((d) => [d.env, int(d.default, d.min)])),
  ...Object.fromEntries(
    Object.values(RETENTION_DEFINITIONS).map((d) => {
      const n = z.coerce.number().min(d.min);
      return [d.env, (d.integer ? n.int() : n).default(d.default)];
    }),
  ),
}) as unknown as z.ZodType<Record<string, number>>;

/** Every environment variable TaskFlow reads (the README's configuration table lists exactly these). */
export const CONFIG_VARIABLES: readonly string[] = [
  ...Object.keys(EnvSchema.shape),
  ...LIMIT_NAMES.map((k) => LIMIT_DEFINITIONS[k].env),
  ...Object.values(QUOTA_DEFINITIONS).map((d) => d.env),
  ...Object.values(RETENTION_DEFINITIONS).map((d) => d.env),
];

export interface Config {
  /** TaskFlow's own state (records, file bytes, quotas, locks): PostgreSQL. */
  database: DatabaseConfig;
  dataDir: string;
  tasksDir: string;
  validationQueue: string;
  /** The one task queue of task runs: high before low and owners served fairly by Temporal's priority keys. */
  taskQueue: string;
  /** `callTimeoutMs` bounds the API's calls (start, query): past it an upload answers 503 and is kept. */
  temporal: { address: string; namespace: string; callTimeoutMs: number };
  /**
   * Slow clients: the whole header block, and the whole request, must arrive within these. `opsPort`: a
   * second listener with only /healthz, /readyz, /metrics (for processes without the API).
   */
  http: { host: string; port: number; headersTimeoutMs: number; requestTimeoutMs: number; opsPort?: number };
  maxUploadBytes: number;
  maxTaskPayloadBytes: number;
  /** The multipart field `test_payloads`, in bytes. */
  maxTestPayloadsBytes: number;
  /** How far ahead `scheduled_at` may be. */
  maxScheduleAheadDays: number;
  apiKeys: { owner: string; token: string }[];
  /** What this process runs (TASKFLOW_ROLES). */
  roles: Role[];
  validation: {
    /** Heartbeat timeout of the static-check and sandbox-run activities: how fast a dead worker is noticed. */
    heartbeatTimeoutMs: number;
    /** Attempts on infrastructure failures before a validation gives up (the file is then rejected). */
    maxAttempts: number;
    /** Activities (checks, sandbox runs) one validation worker process runs at once. */
    workerConcurrency: number;
  };
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  sandbox: SandboxConfig;
  /** Limits for production task runs: the validation containers' limits (a handler must not tell them apart), a longer wall time. */
  taskLimits: SandboxLimits;
  /** Sandbox runs one task worker process executes at once (Temporal hands it high priority first). */
  taskWorkerSlots: number;
  /** What each owner may do and keep (429 beyond; kept versions are pruned by the retention sweep). */
  quotas: Quotas;
  /** How long finished things are kept, and how often the sweep runs. */
  retention: Retention;
  /** Handlers' PEP 723 dependencies: resolved to a lock at validation, unpacked into a layer per lock. */
  dependencies: DependencyConfig;
}

export interface DependencyConfig {
  /** The one package index (a PEP 503 simple URL): no extra indexes, so no dependency confusion. */
  indexUrl: string;
  /** The `uv` binary setup.sh installs (pinned). */
  uvPath: string;
  /** This host's layers (`<cacheDir>/layers/<lock sha256>/`) and uv's download cache: a cache only. */
  cacheDir: string;
  /** Per upload: packages in the lock, and bytes of the unpacked layer. */
  maxPackages: number;
  maxUnpackedBytes: number;
  /** uv's `--native-tls`: trust the system's certificate store (a proxy with its own CA). */
  nativeTls: boolean;
}

export type { SandboxConfig, SandboxLimits };

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = EnvSchema.safeParse(env);
  const parsedLimits = LimitsEnvSchema.safeParse(env);
  const parsedQuotas = QuotaEnvSchema.safeParse(env);
  const issues = [...(parsed.error?.issues ?? []), ...(parsedLimits.error?.issues ?? []), ...(parsedQuotas.error?.issues ?? [])];
  if (!parsed.success || !parsedLimits.success || !parsedQuotas.success) {
    throw new ConfigError(issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  }
  const e = parsed.data;
  const limits = Object.fromEntries(LIMIT_NAMES.map((k) => [k, parsedLimits.data[LIMIT_DEFINITIONS[k].env]])) as SandboxLimits;
  if (limits.payloadTimeoutMs > limits.totalTimeoutMs) {
    throw new ConfigError(['SANDBOX_PAYLOAD_TIMEOUT_MS: must not exceed SANDBOX_TOTAL_TIMEOUT_MS']);
  }
  if (env.TASK_MEMORY_MIB !== undefined) {
    // Silently ignored, it would change a deployment's task memory: say so instead.
    throw new ConfigError([
      'TASK_MEMORY_MIB: removed; tasks and validations share SANDBOX_MEMORY_MIB (they must look the same from inside)',
    ]);
  }
  if (e.HTTP_HEADERS_TIMEOUT_MS > e.HTTP_REQUEST_TIMEOUT_MS) {
    throw new ConfigError(['HTTP_HEADERS_TIMEOUT_MS: must not exceed HTTP_REQUEST_TIMEOUT_MS']);
  }
  const dataDir = path.resolve(e.DATA_DIR);
  return {
    database: { url: e.DATABASE_URL, poolMax: e.DATABASE_POOL_MAX, timeoutMs: e.DATABASE_TIMEOUT_MS },
    dataDir,
    tasksDir: path.resolve(e.TASKS_DIR),
    validationQueue: e.TASK_VALIDATION_QUEUE_NAME,
    taskQueue: e.TASK_QUEUE_NAME,
    temporal: { address: e.TEMPORAL_ADDRESS, namespace: e.TEMPORAL_NAMESPACE, callTimeoutMs: e.TEMPORAL_CALL_TIMEOUT_MS },
    http: {
      host: e.HOST,
      port: e.PORT,
      headersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
      ...(e.OPS_PORT !== undefined ? { opsPort: e.OPS_PORT } : {}),
    },
    maxUploadBytes: e.MAX_UPLOAD_BYTES,
    maxTaskPayloadBytes: e.MAX_TASK_PAYLOAD_BYTES,
    maxTestPayloadsBytes: e.MAX_TEST_PAYLOADS_BYTES,
    maxScheduleAheadDays: e.MAX_SCHEDULE_AHEAD_DAYS,
    apiKeys: e.TASKFLOW_API_KEYS,
    roles: e.TASKFLOW_ROLES,
    validation: {
      heartbeatTimeoutMs: e.VALIDATION_HEARTBEAT_TIMEOUT_MS,
      maxAttempts: e.VALIDATION_MAX_ATTEMPTS,
      workerConcurrency: e.VALIDATION_WORKER_CONCURRENCY,
    },
    logLevel: e.LOG_LEVEL,
    sandbox: {
      dockerSocket: e.DOCKER_SOCKET,
      image: e.SANDBOX_IMAGE,
      allowInsecureRunc: e.SANDBOX_ALLOW_INSECURE_RUNC,
      runscMinRelease: e.RUNSC_MIN_VERSION,
      limits,
      poolSize: e.SANDBOX_POOL_SIZE,
      checkerContainers: e.SANDBOX_CHECKER_CONTAINERS,
      keyedPoolMax: e.SANDBOX_KEYED_POOL_MAX,
      keyedMaxUses: e.SANDBOX_KEYED_MAX_USES,
      keyedIdleTtlMs: e.SANDBOX_KEYED_IDLE_TTL_MS,
    },
    taskLimits: {
      ...limits,
      payloadTimeoutMs: e.TASK_PAYLOAD_TIMEOUT_MS,
      totalTimeoutMs: Math.max(e.TASK_PAYLOAD_TIMEOUT_MS + 5000, limits.totalTimeoutMs),
    },
    taskWorkerSlots: e.TASK_WORKER_SLOTS,
    quotas: Object.fromEntries(Object.entries(QUOTA_DEFINITIONS).map(([k, d]) => [k, parsedQuotas.data[d.env]])) as Quotas,
    retention: Object.fromEntries(Object.entries(RETENTION_DEFINITIONS).map(([k, d]) => [k, parsedQuotas.data[d.env]])) as Retention,
    dependencies: {
      indexUrl: e.PACKAGE_INDEX_URL,
      uvPath: path.resolve(e.DEPENDENCY_UV_PATH ?? path.join(dataDir, 'tools-venv', 'bin', 'uv')),
      cacheDir: path.resolve(e.DEPENDENCY_CACHE_DIR ?? path.join(dataDir, 'dependencies')),
      maxPackages: e.DEPENDENCY_MAX_PACKAGES,
      maxUnpackedBytes: e.DEPENDENCY_MAX_UNPACKED_MIB * 1024 * 1024,
      nativeTls: e.DEPENDENCY_NATIVE_TLS,
    },
  };
}
