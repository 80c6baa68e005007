/**
 * `validateTaskFile`: stage → static check → (dependencies, when the file declares some) → sandbox run → promote, or quarantine on any
 * rejection. Deterministic: activities are imported as types and called through proxies; the
 * `status` query answers at every step (and after the workflow closed); the ValidationStatus,
 * FileName and Owner search attributes make validations filterable in the Web UI.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { ValidationActivities } from '../activities/validation';
import {
  choosePayloads,
  DEPENDENCIES_TIMEOUT_MS,
  REJECTED_ERROR_TYPE,
  isFinal,
  statusQuery,
  validationWaitUpdate,
  VALIDATION_FILE_NAME,
  VALIDATION_OWNER,
  VALIDATION_STATUS,
  type RejectionDetails,
  type SandboxRunReport,
  type ValidationFinding,
  type ValidationInput,
  type ValidationState,
  type ValidationStatus,
} from '../domain/validation';
import { answerWaitForChange } from './wait-for-change';

// Every exported function of this module is registered as a workflow type: keep helpers elsewhere.

function rejectionOf(err: unknown): RejectionDetails | undefined {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === REJECTED_ERROR_TYPE) {
    const d = err.cause.details?.[0] as RejectionDetails | undefined;
    return { findings: Array.isArray(d?.findings) ? d.findings : [], metrics: d?.metrics, report: d?.report };
  }
  return undefined;
}

export async function validateTaskFile(input: ValidationInput): Promise<ValidationStatus> {
  const t = input.timeouts;
  // Infrastructure failures retry with backoff; a user-caused rejection never does.
  const retry: ActivityOptions['retry'] = {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    maximumAttempts: t.maxAttempts,
    nonRetryableErrorTypes: [REJECTED_ERROR_TYPE],
  };
  // Staging, promotion and quarantine are quick database steps: local activities run them inside the
  // workflow task (no task-queue round trip); their results are recorded in history like any activity's,
  // and a worker that dies mid-step re-runs it on replay (each of them is idempotent). Their only
  // infrastructure failure is the database being away: no attempt limit (it comes back, the retry completes).
  const databaseStep: ActivityOptions['retry'] = {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    nonRetryableErrorTypes: [REJECTED_ERROR_TYPE],
  };
  const { stageUpload } = proxyLocalActivities<ValidationActivities>({ startToCloseTimeout: '30 seconds', retry: databaseStep });
  const { staticCheck } = proxyActivities<ValidationActivities>({
    startToCloseTimeout: t.staticCheckMs,
    heartbeatTimeout: t.heartbeatMs,
    retry,
  });
  const { sandboxRun } = proxyActivities<ValidationActivities>({
    startToCloseTimeout: t.sandboxRunMs,
    heartbeatTimeout: t.heartbeatMs,
    retry,
  });
  // The package index being unreachable is an infrastructure failure: retried until it answers (within
  // half an hour), never a rejection; what the requirements themselves cause is non-retryable.
  const { resolveDependencies } = proxyActivities<ValidationActivities>({
    startToCloseTimeout: t.dependenciesMs ?? DEPENDENCIES_TIMEOUT_MS,
    scheduleToCloseTimeout: '30 minutes',
    heartbeatTimeout: t.heartbeatMs,
    retry: { ...retry, maximumAttempts: undefined, maximumInterval: '15 seconds' },
  });
  const { promote, quarantine } = proxyLocalActivities<ValidationActivities>({ startToCloseTimeout: '1 minute', retry: databaseStep });

  const state: ValidationStatus = {
    validation_id: input.validationId,
    file_name: input.fileName,
    owner: input.owner,
    sha256: input.sha256,
    status: 'PENDING',
    findings: [],
    metrics: { size_bytes: input.size },
    created_at: input.createdAt,
    finished_at: null,
  };
  setHandler(statusQuery, () => state);
  const waitersAnswered = answerWaitForChange(
    validationWaitUpdate,
    () => state,
    () => state.status,
    isFinal,
  );
  const set = (status: ValidationState) => {
    state.status = status;
    upsertSearchAttributes([{ key: VALIDATION_STATUS, value: status }]);
  };
  upsertSearchAttributes([
    { key: VALIDATION_STATUS, value: 'PENDING' },
    { key: VALIDATION_FILE_NAME, value: input.fileName },
    { key: VALIDATION_OWNER, value: input.owner },
  ]);
  // The final status, once every waiting `waitForChange` caller has had it.
  const adopt = async (final: ValidationStatus) => {
    Object.assign(state, final);
    set(final.status);
    await waitersAnswered();
    return state;
  };

  let report: SandboxRunReport | undefined;
  try {
    await stageUpload(input);
    set('STATIC_CHECK');
    const check = await staticCheck(input);
    state.findings.push(...check.findings);
    state.metrics.static_check_ms = check.wallMs;

    let lockSha256: string | undefined;
    if (check.script && check.script.dependencies.length > 0) {
      set('RESOLVING_DEPENDENCIES');
      const deps = await resolveDependencies({
        validationId: input.validationId,
        owner: input.owner,
        requirements: check.script.dependencies,
        externalImports: check.externalImports ?? [],
      });
      state.findings.push(...deps.findings);
      state.dependencies = deps.dependencies;
      state.metrics.dependencies_ms = deps.wallMs;
      state.metrics.layer_bytes = deps.layerBytes;
      lockSha256 = deps.dependencies.lock_sha256;
    }

    set('SANDBOX_RUN');
    const run = await sandboxRun(input, choosePayloads(input.testPayloads, check.testPayloads), lockSha256);
    state.findings.push(...run.findings);
    Object.assign(state.metrics, run.metrics);
    report = run.report;

    const final: ValidationStatus = { ...state, status: 'VALIDATED', finished_at: new Date().toISOString() };
    return adopt(await CancellationScope.nonCancellable(() => promote({ validationId: input.validationId, final, report })));
  } catch (err) {
    const rejection = rejectionOf(err);
    const extra: ValidationFinding[] = [];
    if (rejection) {
      Object.assign(state.metrics, rejection.metrics);
      report = rejection.report ?? report;
      extra.push(...rejection.findings);
    } else if (isCancellation(err)) {
      extra.push({ code: 'cancelled', severity: 'error', message: 'the validation was cancelled' });
    } else {
      const why = err instanceof ActivityFailure && err.cause ? err.cause.message : (err as Error).message;
      extra.push({
        code: 'validation_infrastructure_failed',
        severity: 'error',
        message: `the validation could not be completed (${why}); upload the file again`,
      });
    }
    if (!extra.some((f) => f.severity === 'error')) extra.push({ code: 'rejected', severity: 'error', message: 'the file was rejected' });
    state.findings.push(...extra);
    const final: ValidationStatus = { ...state, status: 'REJECTED', finished_at: new Date().toISOString() };
    return adopt(await CancellationScope.nonCancellable(() => quarantine({ validationId: input.validationId, final, report })));
  }
}
