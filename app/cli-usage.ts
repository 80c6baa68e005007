/**
 * The CLI's usage text, apart from the commands: `taskflow --help` loads only this (the commands
 * pull in zod, the HTTP client and Temporal's definitions, most of the CLI's start-up).
 */
import { DEFAULT_URL } from '../src/client/defaults';

export const USER_USAGE = `usage: taskflow <command> [options]

  upload FILE.py [--name NAME] [--payload JSON]... [--wait]
                      upload a task file; with --wait, follow its validation and print the findings
  run NAME [--payload JSON] [--priority high|low] [--wait]
                      start a task on a validated file; with --wait, print its result or error
  status ID [--wait]  a validation (32 hex digits) or a task (UUID)
  tasks [--status STATUS] [--name NAME] [--limit N]
                      your tasks, newest first
  cancel TASK_ID      cancel a task
  delete NAME         delete a task file

options for every command:
  --url URL           the server (default: $TASKFLOW_URL, else ${DEFAULT_URL})
  --token TOKEN       your API token (default: $TASKFLOW_TOKEN)
  --json              print the server's JSON answer instead of text

exit status: 0 done (with --wait: VALIDATED / COMPLETED), 1 REJECTED / FAILED / CANCELLED,
2 bad arguments or the request failed`;

export const OPERATOR_USAGE = `operator commands (need the Docker engine; read the server's environment):
  taskflow sandbox-image
  taskflow sandbox-run FILE.py [--payload JSON]... [--cold]
  taskflow sandbox-check FILE.py`;
