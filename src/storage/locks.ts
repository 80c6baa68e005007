/**
 * Dependency locks in PostgreSQL: each lock's text once (content-addressed, the schema checks its sha256),
 * named by the validations that resolved it. Workers read a lock by sha256 to rebuild a layer they lack.
 */
import type { Database } from '../db';
import { lockOwner } from './records';
import { ownerLayerBytes } from './usage';

export interface StoredLock {
  sha256: string;
  text: string;
  packages: number;
  unpackedBytes: number;
}

export type AttachOutcome = { attached: true } | { attached: false; inUseBytes: number };

export class DependencyLocks {
  constructor(private readonly db: Database) {}

  /**
   * Keeps the lock and names it on the validation, unless the owner's other layers plus this one would
   * pass `quotaBytes` (decided under the owner's lock, so concurrent validations cannot both take the
   * last bytes). Idempotent: a retry finds the lock already named and counts it once.
   */
  async attach(validationId: string, owner: string, lock: StoredLock, quotaBytes: number): Promise<AttachOutcome> {
    return this.db.tx(async (c) => {
      await lockOwner(c, owner);
      const inUseBytes = await ownerLayerBytes(c, owner, lock.sha256);
      if (inUseBytes + lock.unpackedBytes > quotaBytes) return { attached: false, inUseBytes };
      await c.query(
        'INSERT INTO dependency_locks (sha256, lock, packages, unpacked_bytes) VALUES ($1, $2, $3, $4) ON CONFLICT (sha256) DO NOTHING',
        [lock.sha256, lock.text, lock.packages, lock.unpackedBytes],
      );
      await c.query('UPDATE validations SET lock_sha256 = $2 WHERE validation_id = $1 AND final IS NULL', [validationId, lock.sha256]);
      return { attached: true };
    });
  }

  /** A lock's text by sha256 (the schema guarantees it hashes to it), or undefined. */
  async text(sha256: string): Promise<string | undefined> {
    const { rows } = await this.db.pool.query<{ lock: string }>('SELECT lock FROM dependency_locks WHERE sha256 = $1', [sha256]);
    return rows[0]?.lock;
  }
}
