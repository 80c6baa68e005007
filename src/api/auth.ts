/**
 * Bearer tokens. Configured keys (`TASKFLOW_API_KEYS=owner:token,...`) map tokens to owners; with
 * none configured the server runs in dev mode: one owner `dev` whose token is generated once,
 * kept in `<DATA_DIR>/dev-token` (mode 0600) and reused on restart.
 */
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { RequestHandler } from 'express';
import type { Config } from '../config';
import { UnauthorizedError } from '../errors';
import { ensureDir, readIfExists, writeExclusive } from '../storage/fs-safe';

export interface ApiKey {
  owner: string;
  token: string;
}

export interface Credentials {
  keys: ApiKey[];
  /** Present in dev mode only. */
  dev?: { token: string; file: string; created: boolean };
}

const DEV_TOKEN_RE = /^[A-Za-z0-9_-]{32,128}$/;

export function devTokenPath(config: Pick<Config, 'dataDir'>): string {
  return path.join(config.dataDir, 'dev-token');
}

async function devToken(file: string): Promise<{ token: string; created: boolean }> {
  const existing = (await readIfExists(file, 1024))?.toString('utf8').trim();
  if (existing !== undefined) {
    if (!DEV_TOKEN_RE.test(existing)) throw new Error(`${file} does not hold a valid dev token: delete it to get a new one`);
    await fsp.chmod(file, 0o600);
    return { token: existing, created: false };
  }
  const token = crypto.randomBytes(32).toString('base64url');
  try {
    await writeExclusive(file, token + '\n', 0o600);
    return { token, created: true };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return devToken(file); // another process won the race
    throw err;
  }
}

export async function resolveCredentials(config: Pick<Config, 'apiKeys' | 'dataDir'>): Promise<Credentials> {
  if (config.apiKeys.length) return { keys: config.apiKeys };
  await ensureDir(config.dataDir);
  const file = devTokenPath(config);
  const { token, created } = await devToken(file);
  return { keys: [{ owner: 'dev', token }], dev: { token, file, created } };
}

const digest = (s: string): Buffer => crypto.createHash('sha256').update(s, 'utf8').digest();

/** Sets `res.locals.owner`; 401 for a missing, malformed or unknown token. */
export function requireBearer(keys: ApiKey[]): RequestHandler {
  const known = keys.map((k) => ({ owner: k.owner, digest: digest(k.token) }));
  return (req, res, next) => {
    const header = req.get('authorization') ?? '';
    const m = /^Bearer ([^\s]{1,512})$/i.exec(header);
    res.set('WWW-Authenticate', 'Bearer');
    if (!m) return next(new UnauthorizedError('a bearer token is required (Authorization: Bearer <token>)'));
    const given = digest(m[1]);
    let owner: string | undefined;
    for (const k of known) if (crypto.timingSafeEqual(k.digest, given) && owner === undefined) owner = k.owner;
    if (!owner) return next(new UnauthorizedError('the bearer token is not valid', 'invalid_token'));
    res.removeHeader('WWW-Authenticate');
    res.locals.owner = owner;
    next();
  };
}

export function ownerOf(res: { locals: Record<string, unknown> }): string {
  const owner = res.locals.owner;
  if (typeof owner !== 'string') throw new UnauthorizedError();
  return owner;
}
