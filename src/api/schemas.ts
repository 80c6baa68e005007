/**
 * The API's shapes, as zod schemas. Routes parse requests with them and name them in their specs
 * (route-spec.ts), from which `openapi.ts` generates the OpenAPI document (`meta({id})` ones become
 * components); the type assertions at the bottom keep them equal to the TypeScript types
 * the code actually returns.
 */
import { z } from 'zod';
import { DEFAULT_TASK_PRIORITY, MAX_TASK_PAGE, TASK_PRIORITIES, TASK_STATUSES } from '../../domain/task';
import { fileNameProblem, VALIDATION_ID_RE } from '../../domain/names';
import { FINDING_CODES, type FindingCode } from '../../domain/findings';
import { MAX_TEST_PAYLOADS, SEVERITIES, VALIDATION_STATES, type UploadAccepted, type ValidationStatus } from '../../domain/validation';
import { MAX_WAIT_SECONDS, WAIT_UNTIL } from '../../domain/wait';

/**
 * A number from the query string, as `z.coerce.number()` would read it (Number(text)) but without
 * accepting null, which zod-to-openapi would document as `type: [integer, null]` (its issue #360).
 */
const queryNumber = (min: number, max: number, int = false) =>
  z.preprocess((v) => (typeof v === 'string' ? Number(v) : v), (int ? z.number().int() : z.number()).min(min).max(max));
const queryInt = (min: number, max: number) => queryNumber(min, max, true);

export const FileName = z
  .string()
  .regex(
    /^[A-Za-z_][A-Za-z0-9_]{0,63}(\.py)?$/,
    'must be a Python identifier (ASCII letters, digits and _, not starting with a digit, at most 64 characters), optionally ending in .py',
  )
  .refine((v) => fileNameProblem(v) === undefined, 'must not be a Python keyword')
  .describe('Task file name: a Python identifier (ASCII), at most 64 characters, optionally ending in .py');

export const FileNameQuery = z.object({ file_name: FileName });

export const ValidationId = z.string().regex(VALIDATION_ID_RE).describe('32 lowercase hex characters');

/**
 * A JSON object, passed on exactly as parsed: zod's object and record schemas rebuild the object and
 * drop a `__proto__` key on purpose, but for a payload it is just data (JSON.parse made it an own
 * property), so it must reach the handler. Depth is checked separately (json-bounds.ts).
 */
export const JsonObject = z
  .custom<Record<string, unknown>>((v) => typeof v === 'object' && v !== null && !Array.isArray(v), { message: 'must be a JSON object' })
  .meta({ type: 'object' });

/** Each test payload is a JSON object, like a real task payload. */
export const TestPayloads = z.array(JsonObject).min(1).max(MAX_TEST_PAYLOADS);

export const UploadForm = z.object({
  file: z.string().meta({ format: 'binary' }).describe('The Python file (UTF-8 text, binary content is refused)'),
  test_payloads: z
    .string()
    .optional()
    .describe(`JSON array of 1 to ${MAX_TEST_PAYLOADS} objects, each passed to handler() in the validation run`),
});

export const UploadAcceptedSchema = z.object({
  validation_id: ValidationId,
  status: z.literal('PENDING'),
  status_url: z.string(),
  file_name: z.string(),
  sha256: z.string(),
});

export const FindingSchema = z
  .object({
    code: z.enum(Object.keys(FINDING_CODES) as [FindingCode, ...FindingCode[]]),
    severity: z.enum(SEVERITIES),
    message: z.string(),
    line: z.number().int().optional().describe('1-based line'),
    col: z.number().int().optional().describe('1-based column, in characters'),
    snippet: z.string().optional().describe('The source line, then a line with a caret under the column'),
  })
  .meta({ id: 'Finding' });

export const ValidationStatusSchema = z
  .object({
    validation_id: z.string(),
    file_name: z.string(),
    owner: z.string(),
    sha256: z.string(),
    status: z.enum(VALIDATION_STATES),
    findings: z.array(FindingSchema),
    metrics: z.object({
      size_bytes: z.number(),
      static_check_ms: z.number().optional(),
      sandbox_wall_ms: z.number().optional(),
      sandbox_cpu_ms: z.number().optional(),
      peak_memory_kib: z.number().optional(),
      payloads_total: z.number().optional(),
      payloads_ok: z.number().optional(),
      dependencies_ms: z.number().optional(),
      layer_bytes: z.number().optional(),
    }),
    created_at: z.string(),
    finished_at: z.string().nullable(),
    promoted: z.boolean().optional(),
    dependencies: z
      .object({
        requirements: z.array(z.string()).describe("As declared in the file's PEP 723 `# /// script` block"),
        lock_sha256: z.string().describe("sha256 of the lock's text: the version is the file and this lock; its tasks run with it"),
        pins: z.array(z.object({ name: z.string(), version: z.string() })).describe('Every package of the lock, exact'),
      })
      .optional()
      .describe('Present when the file declares dependencies and they were resolved'),
  })
  .meta({ id: 'ValidationStatus' });

export const ScheduledAt = z
  .union([z.iso.datetime({ offset: true }), z.number().nonnegative().max(253402300799)])
  .describe('ISO 8601 time with offset, or unix seconds');

export const TaskCreateBody = z
  .object({
    title: FileName.describe('The task file to run (as uploaded with file_name)'),
    payload: JsonObject.default(() => ({})),
    priority: z.enum(TASK_PRIORITIES).default(DEFAULT_TASK_PRIORITY),
    scheduled_at: ScheduledAt.optional(),
  })
  .strict();

export const CreatedTaskSchema = z
  .object({
    task_id: z.string(),
    status: z.string(),
    title: z.string(),
    priority: z.enum(TASK_PRIORITIES).describe('The priority the task is queued with'),
    requested_priority: z
      .enum(TASK_PRIORITIES)
      .optional()
      .describe('Present when it differs from `priority`: a `high` request beyond QUOTA_HIGH_TASKS_IN_FLIGHT is queued as `low`'),
  })
  .loose();

export const TaskId = z.string().describe('The task_id returned by POST /tasks/');

export const TaskStateSchema = z
  .object({
    task_id: z.string(),
    title: z.string(),
    owner: z.string(),
    priority: z.enum(TASK_PRIORITIES),
    sha256: z.string().describe('The validated file version this task runs'),
    lock_sha256: z.string().optional().describe("That version's dependency lock (its PEP 723 packages), when it declares dependencies"),
    status: z.enum(TASK_STATUSES),
    result: z.unknown().optional().describe("The handler's JSON result (COMPLETED)"),
    error: z.object({ type: z.string(), message: z.string(), traceback: z.string().optional() }).optional(),
    attempts: z.number().int(),
    created_at: z.string(),
    scheduled_at: z.string().optional(),
    started_at: z.string().optional(),
    finished_at: z.string().optional(),
    metrics: z.record(z.string(), z.unknown()).optional(),
  })
  .meta({ id: 'Task', description: 'A task: SCHEDULED → QUEUED → RUNNING → COMPLETED | FAILED | CANCELLED' });

const WaitSeconds = queryNumber(0, MAX_WAIT_SECONDS).describe(
  `Long poll: answer as soon as the status differs from known_status or is final, at the latest after this many seconds (0..${MAX_WAIT_SECONDS}, decimals allowed; 0 or absent: at once)`,
);
const KNOWN_STATUS_HELP = 'The status the client already has (default: the status when the request arrives); only used with wait';
const Until = z
  .enum(WAIT_UNTIL)
  .default('change')
  .describe('change: answer at the first status change; final: only at the final status (for clients that want just the end)');

export const ValidationStatusQuery = z.object({
  wait: WaitSeconds.optional(),
  known_status: z.enum(VALIDATION_STATES).optional().describe(KNOWN_STATUS_HELP),
  until: Until,
});

export const TaskGetQuery = z.object({
  wait: WaitSeconds.optional(),
  known_status: z.enum(TASK_STATUSES).optional().describe(KNOWN_STATUS_HELP),
  until: Until,
});

export const TaskListQuerySchema = z
  .object({
    status: z.enum(TASK_STATUSES).optional(),
    title: FileName.optional(),
    limit: queryInt(1, MAX_TASK_PAGE).default(20),
    offset: queryInt(0, 10000).default(0),
  })
  .strict();

export const TaskListPageSchema = z.object({
  tasks: z.array(TaskStateSchema),
  offset: z.number().int(),
  limit: z.number().int(),
  next_offset: z.number().int().optional(),
});

export const DeletedFileSchema = z.object({
  file_name: z.string(),
  deleted: z.literal(true),
  sha256: z.string().optional(),
  validation_id: z.string().optional(),
});

export const HealthSchema = z.object({
  status: z.enum(['ok', 'degraded']),
  temporal: z.enum(['ok', 'unreachable']),
});

export const ReadinessSchema = z.object({
  status: z.enum(['ready', 'not_ready']),
  checks: z
    .record(z.string(), z.object({ ok: z.boolean(), detail: z.string().optional() }))
    .describe('By check: temporal, pollers (API), sandbox and workers (worker roles)'),
});

export const ErrorSchema = z
  .object({ error: z.object({ code: z.string(), message: z.string() }).loose() })
  .meta({ id: 'Error', description: 'Every error answer: a stable code, a message, sometimes details' });

// Compile-time: the schemas describe exactly what the code returns.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const sameStatus: Same<z.infer<typeof ValidationStatusSchema>, ValidationStatus> = true;
const sameUpload: Same<z.infer<typeof UploadAcceptedSchema>, UploadAccepted> = true;
void sameStatus;
void sameUpload;
