/** Names of the retention sweep: its workflow type and the schedule that starts it. */
export const RETENTION_WORKFLOW = 'retentionSweep';
/** One schedule per validation queue (the queue whose worker owns the storage it sweeps). */
export const retentionScheduleId = (validationQueue: string): string => `taskflow-retention-${validationQueue}`;
