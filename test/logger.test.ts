/** src/logger.ts: pino behind the Logger interface, in the one line format; and the SDK's Logger on top of it. */
import { Writable } from 'node:stream';
import { sdkLogger } from '../app/temporal-runtime';
import { createLogger, type LogLevel } from '../src/logger';

function capture(level: LogLevel = 'debug') {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { lines, log: createLogger(level, { service: 'taskflow', pid: 42 }, sink) };
}

test('one JSON object per line: level, ISO time, base and child fields, the message', () => {
  const { lines, log } = capture();
  log.child({ component: 'api' }).info('listening', { port: 8080 });
  expect(lines).toEqual([
    { level: 'info', time: expect.any(String), service: 'taskflow', pid: 42, component: 'api', port: 8080, msg: 'listening' },
  ]);
  expect(new Date(lines[0].time as string).toISOString()).toBe(lines[0].time);
});

test('errors keep their type, message and stack; below the level nothing is written', () => {
  const { lines, log } = capture('info');
  log.debug('not shown');
  log.error('failed', { error: new TypeError('boom') });
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatchObject({
    level: 'error',
    msg: 'failed',
    error: { type: 'TypeError', message: 'boom', stack: expect.stringContaining('TypeError: boom') },
  });
});

test("the Temporal SDK's Logger writes through it, symbol-keyed metadata dropped", () => {
  const { lines, log } = capture();
  const sdk = sdkLogger(log.child({ component: 'temporal' }));
  sdk.log('WARN', 'Worker state changed', { sdkComponent: 'worker', state: 'STOPPING', [Symbol('ts')]: 1n });
  sdk.trace('fine detail');
  sdk.error('core said', { sdkComponent: 'core' });
  expect(lines).toEqual([
    {
      level: 'warn',
      time: expect.any(String),
      service: 'taskflow',
      pid: 42,
      component: 'temporal',
      sdkComponent: 'worker',
      state: 'STOPPING',
      msg: 'Worker state changed',
    },
    expect.objectContaining({ level: 'debug', msg: 'fine detail' }),
    expect.objectContaining({ level: 'error', sdkComponent: 'core', msg: 'core said' }),
  ]);
});
