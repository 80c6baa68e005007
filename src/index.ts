/** What a program embedding TaskFlow may use. Everything else is internal. */
export { loadConfig, ConfigError, type Config, type Role } from './config';
export { createLogger, silentLogger, type Logger } from './logger';
export * from './errors';
export { createApp, type AppDeps } from './api/app';
export { resolveCredentials, type ApiKey, type Credentials } from './api/auth';
export { openApiDocument } from './api/openapi';
export { openStorage, VersionUnavailableError, type Storage } from './storage';
export { ValidationService, type UploadAccepted, type ValidatedFile } from './validation/service';
export { tasksNotEnabled, type TaskService, type TaskCreateRequest, type CreatedTask, type TaskListQuery, type TaskListPage } from './task-service';
export { TemporalTaskService } from './tasks/temporal-task-service';
export { startTaskWorkers, bundleTaskWorkflows, type TaskWorkerDeps, type RunningTaskWorkers } from './task-worker';
export { createClient, connectWorker, ensureSearchAttributes, temporalHealthy } from './temporal';
export { createValidationWorker, bundleValidationWorkflows, type ValidationWorkerDeps } from './worker';
export { run } from './main';
export type { ValidationStatus, ValidationFinding, ValidationState } from '../workflows/validation-contract';
export type { TaskState, TaskStatus, TaskPriority, TaskInput } from '../workflows/task-contract';
export { createSandbox, type Sandbox, type SandboxOptions, type RunOutcome, type CheckOutcome } from '../sandbox';
