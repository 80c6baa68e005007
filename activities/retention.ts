/** The retention sweep's activity: learn the pinned versions from Temporal, then sweep storage. */
import type { Client } from '@temporalio/client';
import type { Config } from '../src/config';
import type { Logger } from '../src/logger';
import { pinnedVersions } from '../src/retention/pins';
import { sweep, type SweepReport } from '../src/retention/sweep';
import type { Storage } from '../src/storage';

export interface RetentionActivityDeps {
  config: Config;
  storage: Storage;
  client: Client;
  log: Logger;
}

export function createRetentionActivities(deps: RetentionActivityDeps) {
  const log = deps.log.child({ component: 'retention' });
  return {
    async sweepRetention(): Promise<SweepReport> {
      let pinned: Set<string> | undefined;
      try {
        pinned = await pinnedVersions(deps.client);
      } catch (err) {
        // Without the pins no version may go; everything else still can.
        log.warn('could not list the versions tasks are pinned to; keeping every version this time', { error: err as Error });
      }
      const report = await sweep(deps.storage, { retention: deps.config.retention, keptVersions: deps.config.quotas.keptVersions, pinned });
      log.info('retention sweep done', { ...report });
      return report;
    },
  };
}

export type RetentionActivities = ReturnType<typeof createRetentionActivities>;
