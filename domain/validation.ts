/**
 * The validation vocabulary shared by the validation workflow, its activities, storage and the API:
 * states, findings, the public status and the messages the workflow answers. Pure: no Node
 * built-ins, safe inside the workflow bundle.
 */
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { FindingCode } from './findings';
import { WAIT_FOR_CHANGE_UPDATE, type WaitForChange } from './wait';

export { VALIDATION_STATUS, OWNER as VALIDATION_OWNER, FILE_NAME as VALIDATION_FILE_NAME } from './search-attributes';

export const VALIDATION_STATES = ['PENDING', 'STATIC_CHECK', 'RESOLVING_DEPENDENCIES', 'SANDBOX_RUN', 'VALIDATED', 'REJECTED'] as const;
export type ValidationState = (typeof VALIDATION_STATES)[number];
export const isFinal = (s: ValidationState): boolean => s === 'VALIDATED' || s === 'REJECTED';

export const SEVERITIES = ['error', 'warning'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** One thing a user should know about their file: `error` findings reject it, `warning` ones are advice. */
export interface ValidationFinding {
  code: FindingCode;
  severity: Severity;
  message: string;
  /** 1-based; `col` counts characters. */
  line?: number;
  col?: number;
  /** The source line and, under it, a caret at `col`. */
  snippet?: string;
}

export interface ValidationMetrics {
  size_bytes: number;
  static_check_ms?: number;
  sandbox_wall_ms?: number;
  sandbox_cpu_ms?: number;
  peak_memory_kib?: number;
  payloads_total?: number;
  payloads_ok?: number;
  /** Resolving the PEP 723 dependencies and making their layer on the validating host. */
  dependencies_ms?: number;
  /** Unpacked bytes of the dependency layer. */
  layer_bytes?: number;
}

/** A file's PEP 723 dependencies as validated: the requirements, and the lock the version runs with. */
export interface ValidationDependencies {
  /** As declared in the file's `# /// script` block. */
  requirements: string[];
  /** sha256 of the lock's text: the version is the file's bytes and this lock; its tasks run with it. */
  lock_sha256: string;
  /** Every package of the lock, exact (each wheel's sha256 is in the lock's text). */
  pins: { name: string; version: string }[];
}

/** What `POST /tasks/upload_file` answers (202). */
export interface UploadAccepted {
  validation_id: string;
  status: 'PENDING';
  status_url: string;
  file_name: string;
  sha256: string;
}

/** What `DELETE /tasks/delete_file` answers. */
export interface DeletedFile {
  file_name: string;
  deleted: true;
  sha256?: string;
  validation_id?: string;
}

/** What `GET /tasks/validation_status/{id}` answers: the workflow's `status` query. */
export interface ValidationStatus {
  validation_id: string;
  file_name: string;
  owner: string;
  sha256: string;
  status: ValidationState;
  findings: ValidationFinding[];
  metrics: ValidationMetrics;
  created_at: string;
  finished_at: string | null;
  /** Set once VALIDATED: false when a newer upload of the same name had already replaced this one. */
  promoted?: boolean;
  /** Present when the file declares dependencies and they were resolved. */
  dependencies?: ValidationDependencies;
}

/** Resolving and unpacking dependencies on a cold host (resolving takes seconds; unpacking up to DEPENDENCY_MAX_UNPACKED_MIB). */
export const DEPENDENCIES_TIMEOUT_MS = 300_000;

/** Activity timeouts travel with the workflow input, so a running validation keeps the ones it started with. */
export interface ValidationTimeouts {
  staticCheckMs: number;
  sandboxRunMs: number;
  heartbeatMs: number;
  /** Resolving and unpacking dependencies (absent in inputs from before: DEPENDENCIES_TIMEOUT_MS). */
  dependenciesMs?: number;
  /** Attempts for infrastructure failures of stage, check and run before the file is rejected (fail closed). */
  maxAttempts: number;
}

export interface ValidationInput {
  validationId: string;
  owner: string;
  /** The task file's name without `.py` (a validated Python identifier). */
  fileName: string;
  sha256: string;
  size: number;
  createdAt: string;
  /** From the upload's `test_payloads` field. */
  testPayloads?: unknown[];
  timeouts: ValidationTimeouts;
}

/** The exact sandbox run, kept in the validation record and the quarantine report. */
export interface SandboxRunReport {
  /** The sandbox's one run status: ok | handler_error | timeout | memory_limit | forbidden | crashed. */
  status: string;
  payloads: { index: number; status: string; wall_ms: number; error?: { type: string; message: string } }[];
  forbidden: { event: string; detail: string; payloadIndex?: number }[];
  /** System calls gVisor refused, as the host read them from gVisor's own log. */
  syscalls: { syscall: string; nr: number; pid: number; payloadIndex?: number; duringLoad?: boolean }[];
  /** How the container ended, when it ended during the run (oom_killed: the engine's word, never guessed from 137). */
  exit?: { code: number | null; oom_killed: boolean; stopped_by_host?: string; description: string };
  forged_frames: number;
  stdout_tail: string;
  stderr_tail: string;
  /** Container spec: runtime, image, user, limits... exactly as run. */
  spec: Record<string, unknown>;
}

/** Details of a `ValidationRejected` failure thrown by an activity (non-retryable). */
export interface RejectionDetails {
  findings: ValidationFinding[];
  metrics?: Partial<ValidationMetrics>;
  report?: SandboxRunReport;
}

export const REJECTED_ERROR_TYPE = 'ValidationRejected';
export const MAX_TEST_PAYLOADS = 20;

/** The upload's payloads first, then the file's own literal TEST_PAYLOADS; `[{}]` when neither has any. */
export function choosePayloads(fromUpload: unknown[] | undefined, fromFile: unknown[] | undefined): unknown[] {
  const all = [...(fromUpload ?? []), ...(fromFile ?? [])].slice(0, MAX_TEST_PAYLOADS);
  return all.length ? all : [{}];
}

export const VALIDATION_WORKFLOW = 'validateTaskFile';
export const validationWorkflowId = (validationId: string): string => `validation-${validationId}`;
export const statusQuery = defineQuery<ValidationStatus>('status');
/** The long poll behind `GET /tasks/validation_status/{id}?wait=` (domain/wait.ts). */
export const validationWaitUpdate = defineUpdate<ValidationStatus, [WaitForChange<ValidationState>]>(WAIT_FOR_CHANGE_UPDATE);
export const statusPath = (validationId: string): string => `/tasks/validation_status/${validationId}`;
