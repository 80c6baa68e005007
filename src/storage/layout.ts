/**
 * Where everything lives on disk. Paths are built here only, from identifiers checked again on
 * every call, so no user-supplied string ever reaches a path unchecked.
 *
 *   UPLOAD_STAGING_DIR/<random>.upload             staged bytes (fresh random name)
 *   DATA_DIR/validations/<validation_id>.json      upload record (owner, name, sha256, final status)
 *   DATA_DIR/pending-start/<validation_id>         marker: workflow start not yet confirmed
 *   DATA_DIR/by-owner/<owner>/<validation_id>      marker: the owner's records (quotas count them)
 *   DATA_DIR/uploads/<owner>/<name>.json           the name's last upload (or its deletion)
 *   TASKS_DIR/<owner>/<name>.py                    the promoted file
 *   TASKS_DIR/<owner>/<name>.json                  {sha256, validation_id, promoted_at}
 *   TASKS_DIR/<owner>/.versions/<sha256>.py        immutable copy of every validated version
 *   QUARANTINE_DIR/<validation_id>.py / .json      rejected file and its report
 */
import path from 'node:path';
import { FILE_NAME_RE, OWNER_RE, SHA256_RE, VALIDATION_ID_RE } from '../../domain/names';
import { mustMatch, STAGED_NAME_RE } from './ids';

export interface StorageDirs {
  dataDir: string;
  stagingDir: string;
  quarantineDir: string;
  tasksDir: string;
}

export class Layout {
  readonly validationsDir: string;
  readonly pendingStartDir: string;
  readonly byOwnerDir: string;

  constructor(readonly dirs: StorageDirs) {
    this.validationsDir = path.join(dirs.dataDir, 'validations');
    this.pendingStartDir = path.join(dirs.dataDir, 'pending-start');
    this.byOwnerDir = path.join(dirs.dataDir, 'by-owner');
  }

  get stagingDir(): string {
    return this.dirs.stagingDir;
  }

  get quarantineDir(): string {
    return this.dirs.quarantineDir;
  }

  staged(stagedName: string): string {
    return path.join(this.dirs.stagingDir, mustMatch(STAGED_NAME_RE, stagedName, 'staged name'));
  }

  validationRecord(id: string): string {
    return path.join(this.validationsDir, `${mustMatch(VALIDATION_ID_RE, id, 'validation id')}.json`);
  }

  pendingStart(id: string): string {
    return path.join(this.pendingStartDir, mustMatch(VALIDATION_ID_RE, id, 'validation id'));
  }

  ownerRecordsDir(owner: string): string {
    return path.join(this.byOwnerDir, mustMatch(OWNER_RE, owner, 'owner'));
  }

  ownerRecordMarker(owner: string, id: string): string {
    return path.join(this.ownerRecordsDir(owner), mustMatch(VALIDATION_ID_RE, id, 'validation id'));
  }

  ownerUploadsDir(owner: string): string {
    return path.join(this.dirs.dataDir, 'uploads', mustMatch(OWNER_RE, owner, 'owner'));
  }

  uploadPointer(owner: string, name: string): string {
    return path.join(this.ownerUploadsDir(owner), `${mustMatch(FILE_NAME_RE, name, 'file name')}.json`);
  }

  ownerTasksDir(owner: string): string {
    return path.join(this.dirs.tasksDir, mustMatch(OWNER_RE, owner, 'owner'));
  }

  promoted(owner: string, name: string): string {
    return path.join(this.ownerTasksDir(owner), `${mustMatch(FILE_NAME_RE, name, 'file name')}.py`);
  }

  promotionRecord(owner: string, name: string): string {
    return path.join(this.ownerTasksDir(owner), `${mustMatch(FILE_NAME_RE, name, 'file name')}.json`);
  }

  versionsDir(owner: string): string {
    return path.join(this.ownerTasksDir(owner), '.versions');
  }

  version(owner: string, sha256: string): string {
    return path.join(this.versionsDir(owner), `${mustMatch(SHA256_RE, sha256, 'sha256')}.py`);
  }

  quarantinedFile(id: string): string {
    return path.join(this.dirs.quarantineDir, `${mustMatch(VALIDATION_ID_RE, id, 'validation id')}.py`);
  }

  quarantineReport(id: string): string {
    return path.join(this.dirs.quarantineDir, `${mustMatch(VALIDATION_ID_RE, id, 'validation id')}.json`);
  }
}
