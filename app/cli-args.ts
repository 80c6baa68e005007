/** Argument parsing shared by the CLI's commands: node's util.parseArgs plus JSON-valued options. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Bad arguments: the CLI prints the message and the command's usage, and exits 2. */
export class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig['options']>;

export function parse<O extends Options>(args: string[], options: O, positionals: { min: number; max: number; names: string }) {
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const n = parsed.positionals.length;
  if (n < positionals.min) throw new UsageError(`missing ${positionals.names}`);
  if (n > positionals.max) throw new UsageError(`unexpected argument: ${parsed.positionals[positionals.max]}`);
  return parsed;
}

export function json(option: string, raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    throw new UsageError(`--${option} is not valid JSON: ${raw}`);
  }
}

/** A JSON object (what a payload must be). */
export function jsonObject(option: string, raw: string): Record<string, unknown> {
  const v = json(option, raw);
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new UsageError(`--${option} must be a JSON object, like '{"name": "ada"}'`);
  return v as Record<string, unknown>;
}

/** `value` as indented JSON on stdout (the CLIs' --json output). */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}
