/**
 * The one definition of each per-owner quota and of each retention lifetime: its environment
 * variable, unit (in the name), default and bounds. src/config.ts makes the variables from these,
 * the README's table is checked against them; adding a limit is a change here plus its use.
 */
export interface QuotaDefinition {
  env: string;
  /** The name a 429 answer gives (`error.limit`). */
  limit: string;
  default: number;
  min: number;
  /** What a client should wait before trying again when the limit is not a time window (seconds). */
  retryAfterS?: number;
  summary: string;
}

export const QUOTA_DEFINITIONS = {
  uploadsPerMinute: {
    env: 'QUOTA_UPLOADS_PER_MINUTE',
    limit: 'uploads_per_minute',
    default: 30,
    min: 1,
    summary: 'Uploads per owner in any 60 s (counted in the database: every API replica shares the window)',
  },
  validationsInFlight: {
    env: 'QUOTA_VALIDATIONS_IN_FLIGHT',
    limit: 'validations_in_flight',
    default: 10,
    min: 1,
    retryAfterS: 5,
    summary: "An owner's uploads not yet VALIDATED or REJECTED (counted from the upload records)",
  },
  tasksPerMinute: {
    env: 'QUOTA_TASKS_PER_MINUTE',
    limit: 'tasks_per_minute',
    default: 120,
    min: 1,
    summary: 'Tasks created per owner in any 60 s (counted in the database: every API replica shares the window)',
  },
  tasksInFlight: {
    env: 'QUOTA_TASKS_IN_FLIGHT',
    limit: 'tasks_in_flight',
    default: 100,
    min: 1,
    retryAfterS: 5,
    summary: "An owner's unfinished tasks: scheduled, queued or running (counted from the tasks' rows)",
  },
  storedMiB: {
    env: 'QUOTA_STORED_MIB',
    limit: 'stored_bytes',
    default: 64,
    min: 1,
    retryAfterS: 300,
    summary:
      'Bytes kept for an owner: uploads being validated or quarantined, validated versions, records (findings, reports, test payloads), task payloads and results',
  },
  fileNames: {
    env: 'QUOTA_FILE_NAMES',
    limit: 'file_names',
    default: 100,
    min: 1,
    retryAfterS: 300,
    summary: 'Task file names per owner (a deleted name no longer counts)',
  },
  longPolls: {
    env: 'QUOTA_LONG_POLLS',
    limit: 'long_polls',
    default: 20,
    min: 1,
    retryAfterS: 1,
    summary:
      "An owner's long polls (`?wait=`) waiting at once, on validations and on tasks each, per API process (counted in memory: waiters of one workflow share one watch, so this bounds timers, not Temporal calls)",
  },
  highTasksInFlight: {
    env: 'QUOTA_HIGH_TASKS_IN_FLIGHT',
    limit: 'high_tasks_in_flight',
    default: 4,
    min: 1,
    summary:
      'An owner\'s unfinished `high` tasks; a `high` task beyond them is queued as `low` (never a 429; its answer says `priority: "low"`, `requested_priority: "high"`), so one owner\'s `high` flood cannot hold back other owners\' `low` tasks',
  },
  layerMiB: {
    env: 'QUOTA_LAYER_MIB',
    limit: 'layer_bytes',
    default: 1024,
    min: 1,
    retryAfterS: 300,
    summary:
      "Unpacked bytes of an owner's dependency layers, each distinct lock counted once, over its uploads being validated and its kept versions (beyond it a new lock is REJECTED with `dependency_quota_exceeded`, never a 429)",
  },
  keptVersions: {
    env: 'QUOTA_KEPT_VERSIONS',
    limit: 'kept_versions',
    default: 5,
    min: 1,
    summary:
      'Validated versions kept per file name, the current one included; the retention sweep removes older ones no unfinished task is pinned to (never a 429)',
  },
} as const satisfies Record<string, QuotaDefinition>;

export type QuotaName = keyof typeof QUOTA_DEFINITIONS;
export type Quotas = Record<QuotaName, number>;

export interface RetentionDefinition {
  env: string;
  default: number;
  /** Lifetimes may be fractions (0.5 days); the sweep interval is whole minutes. */
  integer: boolean;
  min: number;
  summary: string;
}

export const RETENTION_DEFINITIONS = {
  recordDays: {
    env: 'RETENTION_RECORD_DAYS',
    default: 30,
    integer: false,
    min: 0,
    summary: "Days a finished upload's record (its status) is kept; a name's last upload is kept as long as the name",
  },
  quarantineDays: {
    env: 'RETENTION_QUARANTINE_DAYS',
    default: 14,
    integer: false,
    min: 0,
    summary: "Days a rejected upload's bytes are kept in quarantine (its record and report stay for RETENTION_RECORD_DAYS)",
  },
  versionDays: {
    env: 'RETENTION_VERSION_DAYS',
    default: 30,
    integer: false,
    min: 0,
    summary: 'Days a validated version that is no longer current is kept (never while an unfinished task is pinned to it)',
  },
  sweepIntervalMinutes: {
    env: 'RETENTION_SWEEP_INTERVAL_MINUTES',
    default: 60,
    integer: true,
    min: 1,
    summary: 'How often the retention sweep runs (a Temporal schedule)',
  },
} as const satisfies Record<string, RetentionDefinition>;

export type RetentionName = keyof typeof RETENTION_DEFINITIONS;
export type Retention = Record<RetentionName, number>;
