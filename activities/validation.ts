/**
 * The validation workflow's activities. Made by `createValidationActivities(deps)`: no globals.
 * User-caused outcomes are thrown as non-retryable `ValidationRejected` failures carrying findings;
 * anything else (Docker, disk, a dead container agent) is thrown as is and retried by Temporal.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { ApplicationFailureCategory } from '@temporalio/common';
import type { Config } from '../src/config';
import type { Logger } from '../src/logger';
import type { Metrics } from '../src/metrics';
import { untilDatabaseAnswers } from '../src/db';
import { UploadBytesError, type Storage } from '../src/storage';
import type { Sandbox } from '../sandbox';
import { isFindingCode, type FindingCode } from '../domain/findings';
import {
  REJECTED_ERROR_TYPE,
  type RejectionDetails,
  type SandboxRunReport,
  type ValidationFinding,
  type ValidationInput,
  type ValidationMetrics,
  type ValidationStatus,
} from '../domain/validation';
import { DependencyRejected, LayerCache, undeclaredImports } from '../src/dependencies';
import type { DependencyLayer, ScriptMetadata } from '../sandbox';
import { heartbeating } from './heartbeat';
import { resolveDependencyStep, type DependencyStepInput, type DependencyStepResult } from './validation-dependencies';
import { runFindings, runReport } from './validation-findings';

export interface ValidationActivityDeps {
  config: Config;
  sandbox: Sandbox;
  storage: Storage;
  log: Logger;
  metrics?: Metrics;
  /** This host's dependency layers (default: one on DEPENDENCY_CACHE_DIR). */
  layers?: LayerCache;
}

export interface StaticCheckResult {
  findings: ValidationFinding[];
  testPayloads?: unknown[];
  /** The file's PEP 723 block, when it declares dependencies: the workflow then resolves them. */
  script?: ScriptMetadata;
  /** What the file imports beyond the standard library (checked against the layer's names). */
  externalImports?: DependencyStepInput['externalImports'];
  wallMs: number;
}

export interface SandboxRunResult {
  findings: ValidationFinding[];
  metrics: Partial<ValidationMetrics>;
  report: SandboxRunReport;
}

export interface FinishInput {
  validationId: string;
  final: ValidationStatus;
  report?: SandboxRunReport;
}

export type ValidationActivities = ReturnType<typeof createValidationActivities>;

/** A user-caused outcome: never retried, logged at debug (BENIGN) since it is the normal "no". */
function reject(message: string, details: RejectionDetails): never {
  throw ApplicationFailure.create({
    type: REJECTED_ERROR_TYPE,
    message,
    nonRetryable: true,
    details: [details],
    category: ApplicationFailureCategory.BENIGN,
  });
}

const finding = (code: FindingCode, message: string): ValidationFinding => ({ code, severity: 'error', message });

export function createValidationActivities(deps: ValidationActivityDeps) {
  const { config, sandbox, storage } = deps;
  const log = deps.log.child({ component: 'validation-activities' });
  const layers = deps.layers ?? new LayerCache(config.dependencies, log);

  /** The layer of a lock this validation resolved: on this host, else rebuilt from the lock in the database. */
  const layerOf = (lockSha256: string, signal: AbortSignal): Promise<DependencyLayer> =>
    layers.bySha256(lockSha256, (sha) => storage.locks.text(sha), signal);

  /** The uploaded bytes, exactly as uploaded (by sha256, from the database); rejects when they are gone or changed. */
  async function staged(input: ValidationInput): Promise<Buffer> {
    try {
      return await untilDatabaseAnswers(() => storage.files.uploadBytes(input.sha256), Context.current().cancellationSignal);
    } catch (err) {
      if (err instanceof UploadBytesError) {
        reject(err.message, {
          findings: [finding(err.kind === 'missing' ? 'upload_lost' : 'upload_tampered', `${err.message}: upload the file again`)],
        });
      }
      throw err;
    }
  }

  return {
    /** Re-verifies what the API checked: hash, size, UTF-8 text without NUL bytes. */
    async stageUpload(input: ValidationInput): Promise<{ sha256: string; size: number }> {
      const bytes = await staged(input);
      const findings: ValidationFinding[] = [];
      if (bytes.length !== input.size) findings.push(finding('upload_tampered', 'the staged size differs from the uploaded size'));
      if (bytes.length === 0) findings.push(finding('empty_file', 'the file is empty'));
      if (bytes.length > config.maxUploadBytes)
        findings.push(finding('too_large', `the file is larger than ${config.maxUploadBytes} bytes`));
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(bytes);
      } catch {
        findings.push(finding('not_utf8', 'the file is not valid UTF-8'));
      }
      if (bytes.includes(0)) findings.push(finding('null_bytes', 'the file contains NUL bytes'));
      if (findings.length) reject('the staged upload failed its checks', { findings, metrics: { size_bytes: bytes.length } });
      return { sha256: input.sha256, size: bytes.length };
    },

    /** Python's `ast` in a single-use sandbox container: the file is parsed, never run. */
    async staticCheck(input: ValidationInput): Promise<StaticCheckResult> {
      const source = await staged(input);
      const outcome = await heartbeating('validation', (_beat, signal) =>
        sandbox.check({ source, fileName: `${input.fileName}.py`, maxBytes: config.maxUploadBytes, signal }),
      );
      const findings: ValidationFinding[] = outcome.findings.map((f) => ({
        // The checker speaks the same registry; an unknown code would be a checker bug, never a pass.
        code: isFindingCode(f.code) ? f.code : 'checker_failed',
        severity: f.severity,
        message: f.message,
        ...(f.line !== undefined ? { line: f.line } : {}),
        ...(f.col !== undefined ? { col: f.col } : {}),
        ...(typeof f.snippet === 'string' ? { snippet: f.snippet.slice(0, 1000) } : {}),
      }));
      const externalImports = outcome.externalImports ?? [];
      const declares = (outcome.script?.dependencies.length ?? 0) > 0;
      // Without dependencies only the standard library is there: every external import is undeclared.
      if (!declares) findings.push(...undeclaredImports(externalImports, []));
      if (!outcome.ok || findings.some((f) => f.code === 'undeclared_import' && f.severity === 'error')) {
        if (!findings.some((f) => f.severity === 'error'))
          findings.push(finding('static_check_failed', 'the static check rejected the file'));
        reject('the static check rejected the file', { findings, metrics: { static_check_ms: outcome.wallMs } });
      }
      return {
        findings,
        ...(outcome.testPayloads ? { testPayloads: outcome.testPayloads } : {}),
        ...(declares ? { script: outcome.script, externalImports } : {}),
        wallMs: outcome.wallMs,
      };
    },

    /**
     * The file's PEP 723 dependencies: resolved to a lock (wheels only, hash-pinned), within the owner's
     * layer quota, unpacked on this host, the file's imports checked against them. The index unreachable
     * is an infrastructure failure (retried), never a rejection.
     */
    async resolveDependencies(input: DependencyStepInput): Promise<DependencyStepResult> {
      try {
        const { result } = await heartbeating('validation', (_beat, signal) =>
          resolveDependencyStep(
            { config: config.dependencies, quotaBytes: config.quotas.layerMiB * 1024 * 1024, storage, layers, log },
            input,
            signal,
          ),
        );
        if (result.findings.some((f) => f.severity === 'error'))
          reject('an import is not provided by the declared dependencies', {
            findings: result.findings,
            metrics: { dependencies_ms: result.wallMs, layer_bytes: result.layerBytes },
          });
        return result;
      } catch (err) {
        if (err instanceof DependencyRejected)
          reject(err.message, { findings: [{ code: err.code, severity: 'error', message: err.message.slice(0, 2000) }] });
        throw err;
      }
    },

    /** The file's handler on every test payload in a single-use gVisor container, under the limits. */
    async sandboxRun(input: ValidationInput, payloads: unknown[], lockSha256?: string): Promise<SandboxRunResult> {
      const source = (await staged(input)).toString('utf8');
      const ctx = Context.current();
      const outcome = await heartbeating('validation', async (beat, signal) => {
        const layer = lockSha256 ? await layerOf(lockSha256, signal) : undefined;
        return sandbox.validate({
          source,
          fileName: `${input.fileName}.py`,
          payloads,
          onProgress: beat,
          signal,
          ...(layer ? { layer } : {}),
        });
      });
      const limits = outcome.spec.limits;
      const findings = runFindings(outcome, limits);
      const metrics: Partial<ValidationMetrics> = {
        sandbox_wall_ms: outcome.wallMs,
        sandbox_cpu_ms: outcome.cpuMs,
        peak_memory_kib: outcome.peakMemoryKiB,
        payloads_total: payloads.length,
        payloads_ok: outcome.payloads.filter((p) => p.status === 'ok').length,
      };
      const report = runReport(outcome);
      log.info('sandbox run finished', {
        validationId: input.validationId,
        status: outcome.status,
        attempt: ctx.info.attempt,
        wallMs: outcome.wallMs,
      });
      if (outcome.status !== 'ok') reject('the sandbox run rejected the file', { findings, metrics, report });
      return { findings, metrics, report };
    },

    /** Keeps the version and makes it the name's promoted file, if still its last upload. Idempotent. */
    async promote(input: FinishInput): Promise<ValidationStatus> {
      try {
        const final = await storage.files.promote(input.validationId, input.final, input.report);
        deps.metrics?.validationFinished(final);
        return final;
      } catch (err) {
        if (err instanceof UploadBytesError) {
          reject(err.message, {
            findings: [finding(err.kind === 'missing' ? 'upload_lost' : 'upload_tampered', `${err.message}: upload the file again`)],
          });
        }
        throw err;
      }
    },

    /** The rejection and its report; the bytes stay in quarantine for RETENTION_QUARANTINE_DAYS. Idempotent. */
    async quarantine(input: FinishInput): Promise<ValidationStatus> {
      const final = await storage.files.quarantine(input.validationId, input.final, input.report);
      deps.metrics?.validationFinished(final);
      return final;
    },
  };
}
