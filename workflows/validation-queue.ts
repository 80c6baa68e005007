/** The workflows the validation worker runs on TASK_VALIDATION_QUEUE_NAME: validations and the retention sweep. */
export { validateTaskFile } from './validation';
export { retentionSweep } from './retention';
