/**
 * TaskFlow's search attributes, all Keyword: the one place their names and types are defined.
 * Workflows set them, the API filters on them, start-up and the test harness register them.
 */
import { defineSearchAttributeKey } from '@temporalio/common';

export const VALIDATION_STATUS = defineSearchAttributeKey('ValidationStatus', 'KEYWORD');
export const TASK_STATUS = defineSearchAttributeKey('TaskStatus', 'KEYWORD');
export const OWNER = defineSearchAttributeKey('Owner', 'KEYWORD');
export const FILE_NAME = defineSearchAttributeKey('FileName', 'KEYWORD');

export const SEARCH_ATTRIBUTES = [VALIDATION_STATUS, FILE_NAME, OWNER, TASK_STATUS] as const;
