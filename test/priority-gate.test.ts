/** Pure logic of the slot gate shared by the high and low task workers. */
import { PriorityGate } from '../activities/priority-gate';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('high waiters are served before low ones, whatever the arrival order', async () => {
  const gate = new PriorityGate(1, 0);
  const order: string[] = [];
  const hold = await gate.acquire('high');
  const take = (name: string, p: Promise<() => void>) =>
    p.then((release) => {
      order.push(name);
      setTimeout(release, 5);
    });
  const waits = [take('low1', gate.acquire('low')), take('low2', gate.acquire('low')), take('high1', gate.acquire('high'))];
  hold();
  await Promise.all(waits);
  expect(order).toEqual(['high1', 'low1', 'low2']);
});

test('right after start-up, a low waiter gives way to a high one arriving within the grace period', async () => {
  const gate = new PriorityGate(1, 100);
  const order: string[] = [];
  const low = gate.acquire('low').then((r) => (order.push('low'), r));
  await tick(20);
  const high = gate.acquire('high').then((r) => (order.push('high'), r));
  (await high)();
  (await low)();
  expect(order).toEqual(['high', 'low']);
});

test('after start-up, low waiters are served at once when no high one waits', async () => {
  const gate = new PriorityGate(2, 30);
  await tick(40);
  const started = Date.now();
  (await gate.acquire('low'))();
  expect(Date.now() - started).toBeLessThan(20);
  const release = await gate.acquire('low');
  expect(gate.waiting).toEqual({ high: 0, low: 0 });
  release();
  release(); // a double release does not mint a slot
  const a = await gate.acquire('low');
  const b = await gate.acquire('low');
  let third = false;
  const c = gate.acquire('low').then((r) => ((third = true), r));
  await tick(80);
  expect(third).toBe(false); // both slots are held
  a();
  (await c)();
  b();
});

test('an aborted wait leaves the queue', async () => {
  const gate = new PriorityGate(1, 10);
  const hold = await gate.acquire('high');
  const ctl = new AbortController();
  const waiting = gate.acquire('high', ctl.signal);
  ctl.abort(new Error('cancelled'));
  await expect(waiting).rejects.toThrow('cancelled');
  expect(gate.waiting).toEqual({ high: 0, low: 0 });
  hold();
});
