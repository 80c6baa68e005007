/**
 * Every sandbox container carries the id of the process that made it. Containers whose process
 * is gone (a crash, a SIGKILL) are removed when the next process starts; a live process's
 * containers (another worker on this host) are left alone.
 */
import fs from 'node:fs';
import os from 'node:os';
import type Docker from 'dockerode';
import type { SandboxLogger as Logger } from './logger';
import { LABEL, LABEL_INSTANCE } from './spec';

export function processStartTime(pid: number): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[19];
  } catch {
    return undefined;
  }
}

/** `host/pid/start-time`: survives pid reuse. */
export function instanceId(): string {
  return `${os.hostname()}/${process.pid}/${processStartTime(process.pid) ?? Date.now()}`;
}

function isLive(instance: string): boolean {
  const [host, pidText, start] = instance.split('/');
  if (!pidText) return false; // no owner recorded: nobody will ever clean it up but us
  if (host !== os.hostname()) return true; // another machine's: not ours to judge
  const pid = Number(pidText);
  return Number.isInteger(pid) && processStartTime(pid) === start;
}

async function removeWhere(docker: Docker, log: Logger, pick: (instance: string) => boolean): Promise<number> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL}=true`] } });
  const doomed = list.filter((c) => pick(c.Labels[LABEL_INSTANCE] ?? ''));
  await Promise.all(
    doomed.map((c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined),
    ),
  );
  if (doomed.length) log.info('removed sandbox containers', { count: doomed.length });
  return doomed.length;
}

export function removeLeftovers(docker: Docker, log: Logger): Promise<number> {
  return removeWhere(docker, log, (instance) => !isLive(instance));
}

export function removeOwn(docker: Docker, log: Logger, instance: string): Promise<number> {
  return removeWhere(docker, log, (i) => i === instance);
}
