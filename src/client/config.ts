/**
 * The user CLI's settings: the server's URL and the caller's token, from flags or the environment
 * (TASKFLOW_URL, TASKFLOW_TOKEN). Read once, with zod, like the server's config.
 */
import { z } from 'zod';
import { DEFAULT_URL } from './defaults';

const ClientSettings = z.object({
  url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).transform((u) => u.replace(/\/+$/, '')),
  token: z.string().min(1, 'is missing: pass --token or set TASKFLOW_TOKEN'),
});
export type ClientSettings = z.infer<typeof ClientSettings>;

export class ClientConfigError extends Error {}

/** Flags win over the environment. */
export function clientSettings(flags: { url?: string; token?: string }, env: NodeJS.ProcessEnv = process.env): ClientSettings {
  const parsed = ClientSettings.safeParse({
    url: flags.url ?? env.TASKFLOW_URL ?? DEFAULT_URL,
    token: flags.token ?? env.TASKFLOW_TOKEN ?? '',
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const what = issue.path[0] === 'url' ? 'the server URL (--url, TASKFLOW_URL)' : 'the token (--token, TASKFLOW_TOKEN)';
    throw new ClientConfigError(`${what} ${issue.message}`);
  }
  return parsed.data;
}
