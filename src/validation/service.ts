/**
 * Everything the API does with validations: accept an upload (record first, then the workflow),
 * answer status, re-start validations whose workflow start was never confirmed, and decide
 * whether a file may be used by a task.
 */
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Config } from '../config';
import { ConflictError, NotFoundError, PreconditionFailedError, ServiceUnavailableError } from '../errors';
import type { Logger } from '../logger';
import { WorkflowWaits, type WaitRequest } from '../long-poll';
import { WorkflowStarter } from '../workflow-starter';
import { admitUpload } from '../quotas/admission';
import { newValidationId, sha256Hex, type Storage, type ValidationRecord } from '../storage';
import {
  DEPENDENCIES_TIMEOUT_MS,
  VALIDATION_FILE_NAME,
  VALIDATION_OWNER,
  VALIDATION_STATES,
  VALIDATION_STATUS,
  isFinal,
  statusPath,
  statusQuery,
  VALIDATION_WORKFLOW,
  validationWorkflowId,
  type DeletedFile,
  type UploadAccepted,
  type ValidationInput,
  type ValidationState,
  type ValidationStatus,
} from '../../domain/validation';
import { validationPriority } from '../../domain/priority';

/** The validated version a new task is pinned to. */
export interface ValidatedFile {
  owner: string;
  title: string;
  sha256: string;
  /** The lock the version was validated with, when it declares dependencies: the version is both. */
  lockSha256?: string;
  validationId: string;
}

export interface ValidationServiceDeps {
  config: Config;
  storage: Storage;
  client: Client;
  log: Logger;
  /** Starts the workflows (eagerly when a worker of this process polls the queue); default: through `client`. */
  starter?: WorkflowStarter;
}

export class ValidationService {
  private readonly log: Logger;
  private readonly waits: WorkflowWaits<ValidationStatus, ValidationState>;
  private readonly starter: WorkflowStarter;

  constructor(private readonly deps: ValidationServiceDeps) {
    this.log = deps.log.child({ component: 'validations' });
    this.waits = new WorkflowWaits(deps.client, this.log, { status: (s) => s.status, isFinal }, deps.config.quotas.longPolls);
    this.starter = deps.starter ?? new WorkflowStarter(deps.client);
  }

  /**
   * In one transaction: checks the owner's quotas (429, nothing written), writes the bytes, the record
   * and the name's pointer. Then starts the workflow. When the start fails the upload is kept (the
   * recovery pass starts it later) and the caller gets a 503.
   */
  async upload(owner: string, fileName: string, bytes: Buffer, testPayloads?: unknown[]): Promise<UploadAccepted> {
    const { storage, config } = this.deps;
    const id = newValidationId();
    const payloadBytes = testPayloads ? Buffer.byteLength(JSON.stringify(testPayloads)) : 0;
    const rec = await storage.records.create(
      {
        validation_id: id,
        owner,
        file_name: fileName,
        bytes,
        sha256: sha256Hex(bytes),
        ...(testPayloads ? { test_payloads: testPayloads } : {}),
        workflow_id: validationWorkflowId(id),
      },
      (c) => admitUpload(c, config.quotas, owner, fileName, bytes.length + payloadBytes),
    );
    try {
      await this.start(rec);
    } catch (err) {
      this.log.error('starting the validation workflow failed; it will be started again later', { validationId: id, error: err as Error });
      await storage.records.setStartError(id, (err as Error).message).catch(() => undefined);
      throw new ServiceUnavailableError(
        'Temporal did not accept the validation; the upload is kept and its validation will start once Temporal is back',
        'temporal_unavailable',
        {
          validation_id: id,
          status_url: statusPath(id),
        },
      );
    }
    return { validation_id: id, status: 'PENDING', status_url: statusPath(id), file_name: fileName, sha256: rec.sha256 };
  }

  private input(rec: ValidationRecord): ValidationInput {
    const { sandbox, validation } = this.deps.config;
    return {
      validationId: rec.validation_id,
      owner: rec.owner,
      fileName: rec.file_name,
      sha256: rec.sha256,
      size: rec.size,
      createdAt: rec.created_at,
      ...(rec.test_payloads ? { testPayloads: rec.test_payloads } : {}),
      timeouts: {
        // A fresh container start (~1 s, more under load) plus the checker's own timeout.
        staticCheckMs: sandbox.limits.payloadTimeoutMs + 30000,
        sandboxRunMs: sandbox.limits.totalTimeoutMs + 30000,
        heartbeatMs: validation.heartbeatTimeoutMs,
        dependenciesMs: DEPENDENCIES_TIMEOUT_MS,
        maxAttempts: validation.maxAttempts,
      },
    };
  }

  /** Starts `validation-<id>`; "already started" counts as started (a previous attempt got through). */
  private async start(rec: ValidationRecord): Promise<void> {
    const { config, storage } = this.deps;
    try {
      // Bounded: past the deadline the upload answers 503 and recovery starts it later (a start that
      // did get through is then "already started", which counts as started).
      await this.starter.start(
        VALIDATION_WORKFLOW,
        {
          taskQueue: config.validationQueue,
          workflowId: rec.workflow_id,
          // Owners take turns on the validation queue: one owner's flood does not delay another's file.
          priority: validationPriority(rec.owner),
          args: [this.input(rec)],
          typedSearchAttributes: [
            { key: VALIDATION_STATUS, value: 'PENDING' },
            { key: VALIDATION_FILE_NAME, value: rec.file_name },
            { key: VALIDATION_OWNER, value: rec.owner },
          ],
        },
        Date.now() + config.temporal.callTimeoutMs,
      );
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
    // Temporal has it now. Should the database not take the note, the recovery pass takes it later
    // (its start then answers "already started"): the upload has been accepted either way.
    await storage.records
      .markStarted(rec.validation_id)
      .catch((err: Error) =>
        this.log.warn('could not note the workflow start yet; the recovery pass will', { validationId: rec.validation_id, error: err }),
      );
  }

  /**
   * Starts every validation whose workflow start was never confirmed. Returns how many started. Safe
   * from several replicas at once: a workflow id starts once, "already started" counts as started.
   */
  async recoverPendingStarts(): Promise<number> {
    const { storage } = this.deps;
    let started = 0;
    for (const rec of await storage.records.pendingStarts()) {
      try {
        await this.start(rec);
        started++;
        this.log.info('started a validation left over from before', { validationId: rec.validation_id });
      } catch (err) {
        this.log.warn('could not start a left-over validation yet', { validationId: rec.validation_id, error: err as Error });
        await storage.records.setStartError(rec.validation_id, (err as Error).message).catch(() => undefined);
      }
    }
    return started;
  }

  /**
   * Finishes the record of every validation whose workflow ended without writing its final status
   * (terminated from outside, timed out, past Temporal's history limit, or gone): REJECTED with
   * `validation_aborted`. That frees the owner's validations-in-flight place, lets the name be deleted
   * or uploaded again, and retention remove it. Returns how many. Safe from several replicas at once:
   * a final status is written only where there is none (a workflow writes its own before it closes).
   */
  async reconcileEnded(): Promise<number> {
    const { storage, client, config } = this.deps;
    let ended = 0;
    for (const rec of await storage.records.unfinishedStarted()) {
      let how: string;
      try {
        const handle = client.workflow.getHandle(rec.workflow_id);
        const desc = await client.connection.withDeadline(Date.now() + config.temporal.callTimeoutMs, () => handle.describe());
        if (desc.status.name === 'RUNNING') continue;
        how = `ended ${desc.status.name.toLowerCase().replace(/_/g, ' ')}`;
      } catch (err) {
        // Unsure (Temporal slow or down): leave it for a later pass; only a sure answer finishes a record.
        if (!(err instanceof WorkflowNotFoundError)) continue;
        how = 'is gone';
      }
      const final: ValidationStatus = {
        ...this.fromRecord(rec, 'REJECTED'),
        findings: [
          {
            code: 'validation_aborted',
            severity: 'error',
            message: `the validation's workflow ${how} before it reached a verdict; upload the file again`,
          },
        ],
        finished_at: new Date().toISOString(),
      };
      const written = await storage.files.quarantine(rec.validation_id, final);
      if (written.findings.some((f) => f.code === 'validation_aborted')) {
        ended++;
        this.log.warn('a validation ended without a verdict; its record is now REJECTED', { validationId: rec.validation_id, how });
      }
    }
    return ended;
  }

  /**
   * The status of one of `owner`'s validations. Other owners' ids are indistinguishable from unknown ones.
   * With `wait`, answers once the status differs from `wait.known` (or, `until: 'final'`, only) when it is final, at the latest after
   * `wait.seconds` (the workflow answers; see src/long-poll.ts).
   */
  async status(owner: string, id: string, wait?: WaitRequest<ValidationState>): Promise<ValidationStatus> {
    const deadline = Date.now() + (wait?.seconds ?? 0) * 1000;
    const rec = await this.deps.storage.records.getOwned(owner, id);
    if (!rec) throw new NotFoundError(`no validation ${id}`, 'validation_not_found');
    if (!wait?.seconds || rec.final) return this.statusOf(rec);
    if (!rec.workflow_started) {
      // Its start is still pending (Temporal was unavailable): nothing can tell us sooner.
      await new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())));
    } else {
      // One read per change of the workflow, shared by its waiters: the record (final before the workflow
      // closes), and the live status (a query) only when a waiter wants the changes on the way.
      const answer = await this.waits.wait(owner, rec.workflow_id, wait, deadline, async (changes) => {
        const now = (await this.deps.storage.records.get(id)) ?? rec;
        return now.final || changes ? this.statusOf(now) : this.fromRecord(now, 'PENDING');
      });
      if (answer) return answer;
    }
    return this.statusOf((await this.deps.storage.records.getOwned(owner, id)) ?? rec);
  }

  private async statusOf(rec: ValidationRecord): Promise<ValidationStatus> {
    if (rec.final) return rec.final;
    if (!rec.workflow_started) return this.fromRecord(rec, 'PENDING');
    const { client, config } = this.deps;
    const handle = client.workflow.getHandle(rec.workflow_id);
    const deadline = () => Date.now() + config.temporal.callTimeoutMs;
    try {
      return await client.connection.withDeadline(deadline(), () => handle.query(statusQuery));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return this.fromRecord(rec, 'PENDING');
      // No worker to answer the query (or Temporal is slow): the search attribute still says where it is.
      this.log.warn('status query failed; answering from the visibility record', { validationId: rec.validation_id, error: err as Error });
      try {
        const desc = await client.connection.withDeadline(deadline(), () => handle.describe());
        const sa = desc.typedSearchAttributes.get(VALIDATION_STATUS);
        const state = VALIDATION_STATES.includes(sa as ValidationState) ? (sa as ValidationState) : 'PENDING';
        // A closed workflow's final status is in the record (written before it closed), so this is not final.
        return this.fromRecord(rec, isFinal(state) ? 'PENDING' : state);
      } catch {
        throw new ServiceUnavailableError('Temporal did not answer; try again shortly', 'temporal_unavailable');
      }
    }
  }

  private fromRecord(rec: ValidationRecord, status: ValidationState): ValidationStatus {
    return {
      validation_id: rec.validation_id,
      file_name: rec.file_name,
      owner: rec.owner,
      sha256: rec.sha256,
      status,
      findings: [],
      metrics: { size_bytes: rec.size },
      created_at: rec.created_at,
      finished_at: null,
    };
  }

  /**
   * The version a task named `title` may run: the name's last upload, if it was validated and
   * promoted. 404 when never uploaded, deleted or rejected; 412 while still validating.
   */
  async resolveForTask(owner: string, title: string): Promise<ValidatedFile> {
    const { storage } = this.deps;
    const pointer = await storage.records.pointer(owner, title);
    const notFound = (why: string) => new NotFoundError(`${title}: ${why}`, 'task_file_not_found');
    if (!pointer || pointer.validation_id === null) throw notFound('no such task file (never uploaded, or deleted)');
    const rec = await storage.records.getOwned(owner, pointer.validation_id);
    if (!rec) throw notFound('no such task file');
    // The record gets its final status before the workflow closes: no need to ask Temporal.
    if (rec.final?.status === 'REJECTED') throw notFound(`its last upload (validation ${rec.validation_id}) was rejected`);
    if (rec.final?.status !== 'VALIDATED') {
      throw new PreconditionFailedError(`${title}: its last upload is still being validated`, 'validation_pending', {
        validation_id: rec.validation_id,
        status_url: statusPath(rec.validation_id),
      });
    }
    if (rec.final.promoted === false) throw notFound('its last upload was validated but not promoted');
    await storage.files.touchVersion(owner, rec.sha256);
    const lockSha256 = rec.final.dependencies?.lock_sha256;
    return { owner, title, sha256: rec.sha256, ...(lockSha256 ? { lockSha256 } : {}), validationId: rec.validation_id };
  }

  /**
   * Removes the owner's promoted file (409 while an upload of that name is still validating, 404
   * when nothing is promoted). Validated versions stay, so tasks already pinned to one still run.
   */
  async deleteFile(owner: string, name: string): Promise<DeletedFile> {
    const outcome = await this.deps.storage.files.deleteName(owner, name);
    if (outcome.kind === 'pending') {
      throw new ConflictError(
        `${name}: an upload of it is still being validated (validation ${outcome.validation_id}); delete it once that finished`,
        'validation_pending',
      );
    }
    if (outcome.kind === 'nothing') throw new NotFoundError(`${name}: no promoted task file`, 'task_file_not_found');
    return { file_name: name, deleted: true, sha256: outcome.sha256, validation_id: outcome.validation_id };
  }
}
