/**
 * Every limit a sandbox runs under, defined once: its name carries its unit, and here it gets its
 * environment variable, its default (the safe one), its bounds and what it means. The config schema,
 * the container spec, the agent requests and the README table all follow from this table.
 */
export interface LimitDefinition {
  /** The environment variable that sets it (read once, by the application's config). */
  env: string;
  default: number;
  min: number;
  max?: number;
  /** Whole numbers only (all but CPUs). */
  integer: boolean;
  doc: string;
}

export const LIMIT_DEFINITIONS = {
  // One memory size for validation and production containers alike: from inside, MemTotal and
  // SC_PHYS_PAGES would otherwise tell a validation run from a production one.
  memoryMiB: {
    env: 'SANDBOX_MEMORY_MIB',
    default: 256,
    min: 16,
    integer: true,
    doc: 'Container memory (= memory + swap), the same for validation and production runs',
  },
  cpus: { env: 'SANDBOX_CPUS', default: 1, min: 0.01, max: 64, integer: false, doc: 'CPUs per container' },
  pidsMax: { env: 'SANDBOX_PIDS_MAX', default: 128, min: 16, integer: true, doc: 'Processes/threads per container' },
  nofile: { env: 'SANDBOX_NOFILE', default: 64, min: 16, integer: true, doc: 'Open files per process' },
  fsizeMiB: { env: 'SANDBOX_FSIZE_MIB', default: 8, min: 1, integer: true, doc: 'Largest file a handler may write' },
  tmpfsMiB: { env: 'SANDBOX_TMPFS_MIB', default: 16, min: 1, integer: true, doc: "Size of the container's `/tmp`" },
  payloadTimeoutMs: { env: 'SANDBOX_PAYLOAD_TIMEOUT_MS', default: 5000, min: 100, integer: true, doc: 'Wall time per test payload' },
  totalTimeoutMs: { env: 'SANDBOX_TOTAL_TIMEOUT_MS', default: 30000, min: 500, integer: true, doc: 'Wall time of a whole validation run' },
  outputCapBytes: { env: 'SANDBOX_OUTPUT_CAP_BYTES', default: 64 * 1024, min: 1024, integer: true, doc: 'stdout/stderr kept per run' },
  resultCapBytes: { env: 'SANDBOX_RESULT_CAP_BYTES', default: 1024 * 1024, min: 1024, integer: true, doc: 'Largest handler result' },
  // Python's json gives up near 1 000 levels (and the sandbox wraps values in a few of its own): 256 at most.
  jsonMaxDepth: {
    env: 'MAX_JSON_DEPTH',
    default: 64,
    min: 1,
    max: 256,
    integer: true,
    doc: 'Deepest nesting of objects/arrays in `test_payloads`, task payloads and handler results',
  },
} as const satisfies Record<string, LimitDefinition>;

export type LimitName = keyof typeof LIMIT_DEFINITIONS;
export type SandboxLimits = Record<LimitName, number>;
export const LIMIT_NAMES = Object.keys(LIMIT_DEFINITIONS) as LimitName[];

export const DEFAULT_LIMITS: SandboxLimits = Object.fromEntries(LIMIT_NAMES.map((k) => [k, LIMIT_DEFINITIONS[k].default])) as SandboxLimits;

/**
 * Limits fixed when a container is created; a run asking for other values needs its own container.
 * Validation and production containers share all of them (createSandbox refuses otherwise), so a
 * handler cannot tell the two apart from inside; only the wall-time budgets differ.
 */
export const CONTAINER_LIMITS: readonly LimitName[] = ['memoryMiB', 'cpus', 'pidsMax', 'nofile', 'fsizeMiB', 'tmpfsMiB'];

export function sameContainerLimits(a: SandboxLimits, b: SandboxLimits): boolean {
  return CONTAINER_LIMITS.every((k) => a[k] === b[k]);
}

/** Largest task file the in-sandbox checker accepts when the caller names no bound. */
export const DEFAULT_CHECK_MAX_BYTES = 1024 * 1024;
