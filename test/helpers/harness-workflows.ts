/** Workflow code for test/temporal-harness.test.ts only: proves a worker runs and search attributes index. */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { upsertSearchAttributes } from '@temporalio/workflow';

const ValidationStatus = defineSearchAttributeKey('ValidationStatus', SearchAttributeType.KEYWORD);

export async function harnessGreet(name: string): Promise<string> {
  upsertSearchAttributes([{ key: ValidationStatus, value: 'VALIDATED' }]);
  return `hello ${name}`;
}
