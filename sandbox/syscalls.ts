/**
 * The system calls the sandbox forbids, by name and x86_64 number, read from `syscall-table.json` — the
 * same file the child runner's filter reads inside the image.
 */
import table from './syscall-table.json';

export type SyscallName = keyof typeof table.syscalls;

export const SYSCALLS = table.syscalls as Record<SyscallName, { nr: number; what: string }>;

const byNumber = new Map<number, SyscallName>((Object.keys(SYSCALLS) as SyscallName[]).map((name) => [SYSCALLS[name].nr, name]));

/** The name of syscall `nr` (x86_64), or `syscall_<nr>` for one this table does not list. */
export function syscallName(nr: number): string {
  return byNumber.get(nr) ?? `syscall_${nr}`;
}

/** What attempting `name` means, for a person. */
export function syscallMeaning(name: string): string {
  return (SYSCALLS as Record<string, { what: string } | undefined>)[name]?.what ?? 'a system call the sandbox forbids';
}
