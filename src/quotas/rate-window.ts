/**
 * A sliding 60-second window of events per owner, in process memory: what "uploads per minute" and
 * "tasks per minute" count. One API process owns an owner's requests, so it sees all of them; a
 * restart forgets the window (at worst an owner gets one extra minute's worth right after it).
 */
export const WINDOW_MS = 60_000;

export class RateWindow {
  private readonly events = new Map<string, number[]>();

  constructor(readonly max: number) {}

  /** Milliseconds until `owner` may act again (0: now). Does not count anything. */
  waitMs(owner: string, now = Date.now()): number {
    const recent = this.prune(owner, now);
    return recent.length < this.max ? 0 : recent[recent.length - this.max] + WINDOW_MS - now;
  }

  record(owner: string, now = Date.now()): void {
    const recent = this.prune(owner, now);
    recent.push(now);
    this.events.set(owner, recent);
  }

  private prune(owner: string, now: number): number[] {
    const kept = (this.events.get(owner) ?? []).filter((t) => t > now - WINDOW_MS);
    if (kept.length) this.events.set(owner, kept);
    else this.events.delete(owner);
    return kept;
  }
}
