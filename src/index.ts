/**
 * The library a program embedding TaskFlow may use. Everything else is internal. The runnable pieces
 * that wire it together (workers, the process's `run`, Temporal connections) are in `app/index.ts`.
 */
export { loadConfig, ConfigError, type Config, type Role } from './config';
export { createLogger, silentLogger, type Logger } from './logger';
export * from './errors';
export { createApp, type AppDeps } from './api/app';
export { resolveCredentials, type ApiKey, type Credentials } from './api/auth';
export { openApiDocument } from './api/openapi';
export { openStorage, VersionUnavailableError, type Storage } from './storage';
export { ValidationService, type ValidatedFile } from './validation/service';
export type { UploadAccepted } from '../domain/validation';
export {
  tasksNotEnabled,
  type TaskService,
  type TaskCreateRequest,
  type CreatedTask,
  type TaskListQuery,
  type TaskListPage,
} from './tasks/task-service';
export { TemporalTaskService } from './tasks/temporal-task-service';
export type { ValidationStatus, ValidationFinding, ValidationState } from '../domain/validation';
export type { TaskState, TaskStatus, TaskPriority, TaskInput } from '../domain/task';
export { createSandbox, type Sandbox, type SandboxOptions, type RunOutcome, type CheckOutcome } from '../sandbox';
