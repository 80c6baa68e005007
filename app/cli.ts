/**
 * Operator CLI: `npx taskflow <command>`.
 *   sandbox-image                               build (if inputs changed) and print the sandbox image tag
 *   sandbox-run FILE.py [--payload JSON]... [--cold]   run a task file in a sandbox, print the outcome JSON
 *   sandbox-check FILE.py                       static findings as JSON
 * Exit status 0 only when every payload succeeded / no finding rejects the file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { connectDocker, verifyEngine } from '../sandbox/engine';
import { ensureImage } from '../sandbox/image';
import { createSandbox } from '../sandbox';

const USAGE = `usage:
  taskflow sandbox-image
  taskflow sandbox-run FILE.py [--payload JSON]... [--cold]
  taskflow sandbox-check FILE.py`;

interface Parsed {
  file?: string;
  payloads: unknown[];
  cold: boolean;
}

function parseArgs(args: string[]): Parsed {
  const out: Parsed = { payloads: [], cold: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--cold') out.cold = true;
    else if (a === '--payload') {
      const raw = args[++i];
      if (raw === undefined) throw new Error('--payload needs a JSON value');
      try {
        out.payloads.push(JSON.parse(raw));
      } catch {
        throw new Error(`--payload is not valid JSON: ${raw}`);
      }
    } else if (!out.file && !a.startsWith('--')) out.file = a;
    else throw new Error(`unexpected argument: ${a}`);
  }
  return out;
}

function print(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  if (command === 'sandbox-image') {
    const docker = connectDocker(config.sandbox);
    await verifyEngine(docker, config.sandbox, log);
    process.stdout.write((await ensureImage(docker, log)) + '\n');
    return 0;
  }
  if (command !== 'sandbox-run' && command !== 'sandbox-check') {
    process.stderr.write(USAGE + '\n');
    return 2;
  }
  const args = parseArgs(rest);
  if (!args.file) throw new Error(`${command} needs a FILE.py\n${USAGE}`);
  const source = fs.readFileSync(args.file);
  const fileName = path.basename(args.file);
  const sandbox = await createSandbox(config.sandbox, log);
  try {
    if (command === 'sandbox-check') {
      const outcome = await sandbox.check({ source, fileName, maxBytes: config.maxUploadBytes });
      print(outcome);
      return outcome.ok ? 0 : 1;
    }
    const req = {
      source: source.toString('utf8'),
      fileName,
      payloads: args.payloads.length ? args.payloads : [{}],
      onProgress: (p: unknown) => log.info('sandbox progress', { progress: p }),
    };
    const outcome = args.cold ? await sandbox.runCold(req) : await sandbox.validate(req);
    print(outcome);
    return outcome.ok ? 0 : 1;
  } finally {
    await sandbox.close();
  }
}
