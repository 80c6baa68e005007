/**
 * The operator's commands, run on a machine with the Docker engine:
 *   sandbox-image                                    build (if inputs changed) and print the sandbox image tag
 *   sandbox-run FILE.py [--payload JSON]... [--cold] run a task file in a sandbox, print the outcome JSON
 *                                                    (its `status`, the refused `syscalls`, and the
 *                                                    `findings` a validation would report)
 *   sandbox-check FILE.py                            static findings as JSON
 * Exit status 0 only when the run's status is ok / no finding rejects the file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { connectDocker, verifyEngine } from '../sandbox/engine';
import { ensureImage } from '../sandbox/image';
import { createSandbox } from '../sandbox';
import { runFindings } from '../activities/validation-findings';
import { json, parse, printJson } from './cli-args';

export async function sandboxImage(args: string[]): Promise<number> {
  parse(args, {}, { min: 0, max: 0, names: '' });
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  const docker = connectDocker(config.sandbox);
  await verifyEngine(docker, config.sandbox, log);
  process.stdout.write((await ensureImage(docker, log)) + '\n');
  return 0;
}

export async function sandboxRunOrCheck(command: 'sandbox-run' | 'sandbox-check', args: string[]): Promise<number> {
  const { values, positionals } =
    command === 'sandbox-run'
      ? parse(args, { payload: { type: 'string', multiple: true }, cold: { type: 'boolean' } }, { min: 1, max: 1, names: 'FILE.py' })
      : parse(args, {}, { min: 1, max: 1, names: 'FILE.py' });
  const opts = values as { payload?: string[]; cold?: boolean };
  const payloads = (opts.payload ?? []).map((p) => json('payload', p));
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  const source = fs.readFileSync(positionals[0]);
  const fileName = path.basename(positionals[0]);
  const sandbox = await createSandbox(config.sandbox, log);
  try {
    if (command === 'sandbox-check') {
      const outcome = await sandbox.check({ source, fileName, maxBytes: config.maxUploadBytes });
      printJson(outcome);
      return outcome.ok ? 0 : 1;
    }
    const req = {
      source: source.toString('utf8'),
      fileName,
      payloads: payloads.length ? payloads : [{}],
      onProgress: (p: unknown) => log.info('sandbox progress', { progress: p }),
    };
    const outcome = opts.cold ? await sandbox.runCold(req) : await sandbox.validate(req);
    printJson({ ...outcome, findings: runFindings(outcome, outcome.spec.limits) });
    return outcome.status === 'ok' ? 0 : 1;
  } finally {
    await sandbox.close();
  }
}
