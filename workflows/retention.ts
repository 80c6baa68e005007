/**
 * `retentionSweep`: one pass of the retention sweep (activities/retention.ts), started by a
 * Temporal schedule every RETENTION_SWEEP_INTERVAL_MINUTES (app/temporal.ts `ensureRetentionSchedule`).
 */
import { proxyActivities } from '@temporalio/workflow';
import type { RetentionActivities } from '../activities/retention';
import type { SweepReport } from '../src/retention/sweep';

const { sweepRetention } = proxyActivities<RetentionActivities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 3 },
});

export async function retentionSweep(): Promise<SweepReport> {
  return sweepRetention();
}
