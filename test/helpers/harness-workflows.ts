/** Workflow code for test/temporal-harness.test.ts only: proves a worker runs and search attributes index. */
import { upsertSearchAttributes } from '@temporalio/workflow';
import { VALIDATION_STATUS } from '../../domain/search-attributes';

export async function harnessGreet(name: string): Promise<string> {
  upsertSearchAttributes([{ key: VALIDATION_STATUS, value: 'VALIDATED' }]);
  return `hello ${name}`;
}
