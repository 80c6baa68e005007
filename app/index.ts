/** The runnable pieces: what a program that hosts TaskFlow's roles itself may start. */
export { run } from './main';
export { startTaskWorkers, bundleTaskWorkflows, type TaskWorkerDeps, type RunningTaskWorkers } from './task-worker';
export { createValidationWorker, bundleValidationWorkflows, type ValidationWorkerDeps } from './validation-worker';
export { createClient, connectWorker, ensureRetentionSchedule, ensureSearchAttributes, temporalHealthy } from './temporal';
export { installTemporalRuntime, sdkLogger } from './temporal-runtime';
