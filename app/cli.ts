/**
 * `npx taskflow <command>`: the user's commands (upload, run, status, tasks, cancel, delete; they
 * talk to a server over HTTP) and the operator's (sandbox-image, sandbox-run, sandbox-check; they
 * drive the local Docker engine). Every command parses its own arguments with node's
 * util.parseArgs. Exit status: 0 done, 1 the outcome was a failure, 2 bad arguments or a failed request.
 */
import { UsageError } from './cli-args';
import { OPERATOR_USAGE, USER_USAGE } from './cli-usage';

const USAGE = `${USER_USAGE}\n\n${OPERATOR_USAGE}`;
/** Loaded only when used, so that `--help` stays cheap: the HTTP client, zod, Temporal's definitions. */
const user = () => import('./cli-user');
/** Loaded only when used: it pulls in the config, Docker and the sandbox runtime. */
const operator = () => import('./cli-operator');

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  upload: async (args) => (await user()).upload(args),
  run: async (args) => (await user()).run(args),
  status: async (args) => (await user()).status(args),
  tasks: async (args) => (await user()).tasks(args),
  cancel: async (args) => (await user()).cancel(args),
  delete: async (args) => (await user()).remove(args),
  'sandbox-image': async (args) => (await operator()).sandboxImage(args),
  'sandbox-run': async (args) => (await operator()).sandboxRunOrCheck('sandbox-run', args),
  'sandbox-check': async (args) => (await operator()).sandboxRunOrCheck('sandbox-check', args),
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE + '\n');
    return command === undefined ? 2 : 0;
  }
  const run = Object.prototype.hasOwnProperty.call(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (!run) {
    process.stderr.write(`taskflow: unknown command ${JSON.stringify(command)}\n\n${USAGE}\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  try {
    return await run(rest);
  } catch (err) {
    // The client's error classes: loaded already when a user command ran.
    const { ApiError, ConnectionError } = await import('../src/client/api-client');
    const { ClientConfigError } = await import('../src/client/config');
    if (err instanceof UsageError) {
      process.stderr.write(`taskflow ${command}: ${err.message}\n(taskflow --help for usage)\n`);
      return 2;
    }
    if (err instanceof ApiError) {
      process.stderr.write(`taskflow ${command}: HTTP ${err.status} ${err.code}: ${err.message}\n`);
      return 2;
    }
    if (err instanceof ConnectionError || err instanceof ClientConfigError) {
      process.stderr.write(`taskflow ${command}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
