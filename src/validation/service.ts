/**
 * Everything the API does with validations: accept an upload (record first, then the workflow),
 * answer status, re-start validations whose workflow start was never confirmed, and decide
 * whether a file may be used by a task.
 */
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Config } from '../config';
import { ConflictError, NotFoundError, PreconditionFailedError, ServiceUnavailableError } from '../errors';
import type { Logger } from '../logger';
import { KeyedMutex } from '../keyed-mutex';
import { WorkflowWaits, type WaitRequest } from '../long-poll';
import { WorkflowStarter } from '../workflow-starter';
import { UploadQuotas } from '../quotas/admission';
import { newValidationId, UnreadableFileError, type Storage, type ValidationRecord } from '../storage';
import {
  VALIDATION_FILE_NAME,
  VALIDATION_OWNER,
  VALIDATION_STATES,
  VALIDATION_STATUS,
  isFinal,
  statusPath,
  statusQuery,
  validationWaitUpdate,
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
  /**
   * Serializes what uploads and deletes do to one owner/name's pointer, so a delete can never
   * overwrite the pointer of an upload it did not see (the upload wins). The API is the only
   * writer of pointers, and one API process owns a DATA_DIR.
   */
  private readonly names = new KeyedMutex();
  /** Unreadable records already reported by the recovery pass (reported once per process). */
  private readonly reportedUnreadable = new Set<string>();
  private readonly waits: WorkflowWaits;
  private readonly starter: WorkflowStarter;
  private readonly quotas: UploadQuotas;

  constructor(private readonly deps: ValidationServiceDeps) {
    this.log = deps.log.child({ component: 'validations' });
    this.waits = new WorkflowWaits(deps.client, this.log);
    this.starter = deps.starter ?? new WorkflowStarter(deps.client);
    this.quotas = new UploadQuotas(deps.config.quotas, deps.storage.usage);
  }

  /**
   * Checks the owner's quotas (429), stages the bytes, writes the record and the name's pointer, then
   * starts the workflow. When the start fails the upload is kept (marked for a later start) and the
   * caller gets a 503.
   */
  async upload(owner: string, fileName: string, bytes: Buffer, testPayloads?: unknown[]): Promise<UploadAccepted> {
    const { storage } = this.deps;
    // Over a quota: 429 before a byte is written.
    const rec = await this.quotas.admit(owner, fileName, bytes.length, async () => {
      const staged = await storage.files.stage(bytes);
      const id = newValidationId();
      const created: ValidationRecord = {
        validation_id: id,
        owner,
        file_name: fileName,
        sha256: staged.sha256,
        size: staged.size,
        staged_name: staged.stagedName,
        created_at: new Date().toISOString(),
        ...(testPayloads ? { test_payloads: testPayloads } : {}),
        workflow_id: validationWorkflowId(id),
        workflow_started: false,
      };
      try {
        await storage.records.create(created);
      } catch (err) {
        await storage.files.discardStaged(staged.stagedName).catch(() => undefined); // no record: nothing would ever use them
        throw err;
      }
      await storage.records.markPendingStart(id);
      await this.names.run(`${owner}/${fileName}`, () =>
        storage.records.setPointer(owner, fileName, { validation_id: id, uploaded_at: created.created_at }),
      );
      return created;
    });
    const id = rec.validation_id;
    try {
      await this.start(rec);
    } catch (err) {
      this.log.error('starting the validation workflow failed; it will be started again later', { validationId: id, error: err as Error });
      await storage.records.update(id, (r) => ({ ...r, start_error: (err as Error).message.slice(0, 500) }));
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
      stagedName: rec.staged_name,
      createdAt: rec.created_at,
      ...(rec.test_payloads ? { testPayloads: rec.test_payloads } : {}),
      timeouts: {
        // A fresh container start (~1 s, more under load) plus the checker's own timeout.
        staticCheckMs: sandbox.limits.payloadTimeoutMs + 30000,
        sandboxRunMs: sandbox.limits.totalTimeoutMs + 30000,
        heartbeatMs: validation.heartbeatTimeoutMs,
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
    await storage.records.update(rec.validation_id, (r) => {
      const { start_error: _dropped, ...rest } = r;
      return { ...rest, workflow_started: true };
    });
    await storage.records.clearPendingStart(rec.validation_id);
  }

  /**
   * Starts every validation whose workflow start was never confirmed. Returns how many started.
   * One bad record never stops the pass: it is reported (once) and skipped, and the rest go on.
   */
  async recoverPendingStarts(): Promise<number> {
    const { storage } = this.deps;
    let started = 0;
    for (const id of await storage.records.pendingStarts()) {
      try {
        const rec = await storage.records.get(id);
        if (!rec || rec.final || rec.workflow_started) {
          await storage.records.clearPendingStart(id);
          continue;
        }
        try {
          await this.start(rec);
          started++;
          this.log.info('started a validation left over from before', { validationId: id });
        } catch (err) {
          this.log.warn('could not start a left-over validation yet', { validationId: id, error: err as Error });
          await storage.records.update(id, (r) => ({ ...r, start_error: (err as Error).message.slice(0, 500) }));
        }
      } catch (err) {
        if (!(err instanceof UnreadableFileError)) {
          this.log.warn('recovery skipped a validation', { validationId: id, error: err as Error });
        } else if (!this.reportedUnreadable.has(id)) {
          this.reportedUnreadable.add(id);
          this.log.error('the record of a left-over validation cannot be read; skipping it', { validationId: id, reason: err.reason });
        }
      }
    }
    return started;
  }

  /**
   * The status of one of `owner`'s validations. Other owners' ids are indistinguishable from unknown ones.
   * With `wait`, answers once the status differs from `wait.known` (or, `until: 'final'`, only) when it is final, at the latest after
   * `wait.seconds` (the workflow answers; see src/long-poll.ts).
   */
  async status(owner: string, id: string, wait?: WaitRequest<ValidationState>): Promise<ValidationStatus> {
    const rec = await this.deps.storage.records.getOwned(owner, id);
    if (!rec) throw new NotFoundError(`no validation ${id}`, 'validation_not_found');
    if (!wait?.seconds || rec.final) return this.statusOf(rec);
    if (!rec.workflow_started) {
      // Its start is still pending (Temporal was unavailable): nothing can tell us sooner.
      await new Promise((r) => setTimeout(r, wait.seconds * 1000));
    } else {
      const answer =
        wait.until === 'final'
          ? await this.waits.result<ValidationStatus>(rec.workflow_id, wait.seconds)
          : await this.waits.wait(rec.workflow_id, validationWaitUpdate, wait, (s) => s.status);
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
    return { owner, title, sha256: rec.sha256, validationId: rec.validation_id };
  }

  /**
   * Removes the owner's promoted file (409 while an upload of that name is still validating, 404
   * when nothing is promoted). Validated versions stay, so tasks already pinned to one still run.
   */
  async deleteFile(owner: string, name: string): Promise<DeletedFile> {
    const { storage } = this.deps;
    return this.names.run(`${owner}/${name}`, async () => {
      const pending = await this.pendingUpload(owner, name);
      if (pending) {
        throw new ConflictError(
          `${name}: an upload of it is still being validated (validation ${pending}); delete it once that finished`,
          'validation_pending',
        );
      }
      const removed = await storage.files.deletePromoted(owner, name);
      if (!removed) throw new NotFoundError(`${name}: no promoted task file`, 'task_file_not_found');
      await storage.records.setPointer(owner, name, {
        validation_id: null,
        deleted_at: new Date().toISOString(),
        ...(removed.validation_id ? { deleted_validation_id: removed.validation_id } : {}),
      });
      return {
        file_name: name,
        deleted: true,
        ...(removed.sha256 ? { sha256: removed.sha256 } : {}),
        ...(removed.validation_id ? { validation_id: removed.validation_id } : {}),
      };
    });
  }

  /**
   * The id of the name's last upload while it is still validating. An unreadable pointer or record
   * counts as not pending (its validation cannot finish either), so a broken upload never stops a delete.
   */
  private async pendingUpload(owner: string, name: string): Promise<string | undefined> {
    const { records } = this.deps.storage;
    try {
      const pointer = await records.pointer(owner, name);
      if (!pointer?.validation_id) return undefined;
      const rec = await records.getOwned(owner, pointer.validation_id);
      return rec && !rec.final ? rec.validation_id : undefined;
    } catch (err) {
      if (!(err instanceof UnreadableFileError)) throw err;
      this.log.error('an upload record cannot be read; deleting the file anyway', { owner, fileName: name, reason: err.reason });
      return undefined;
    }
  }
}
