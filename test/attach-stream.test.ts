/** Docker's multiplexed attach stream, split into stdout lines and stderr bytes however the chunks fall. */
import { AttachDemuxer } from '../sandbox/attach-stream';

const frame = (type: number, payload: string | Buffer): Buffer => {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
  const head = Buffer.alloc(8);
  head[0] = type;
  head.writeUInt32BE(body.length, 4);
  return Buffer.concat([head, body]);
};

function collect(maxLine = 1 << 20) {
  const lines: string[] = [];
  let stderr = '';
  let oversized = 0;
  const demux = new AttachDemuxer(
    {
      line: (l) => lines.push(l.toString('utf8')),
      stderr: (c) => (stderr += c.toString('utf8')),
      oversized: () => oversized++,
    },
    maxLine,
  );
  return { demux, lines, stderr: () => stderr, oversized: () => oversized };
}

test('every way of cutting the stream gives the same lines and stderr', () => {
  const wire = Buffer.concat([
    frame(1, 'first line\nsecond '),
    frame(2, 'agent: hello\n'),
    frame(1, 'line\n'),
    frame(1, ''),
    frame(1, 'third\nfou'),
    frame(2, 'more'),
    frame(1, 'rth\n'),
  ]);
  for (let size = 1; size <= wire.length; size++) {
    const c = collect();
    for (let i = 0; i < wire.length; i += size) c.demux.push(wire.subarray(i, i + size));
    expect([size, c.lines]).toEqual([size, ['first line', 'second line', 'third', 'fourth']]);
    expect(c.stderr()).toBe('agent: hello\nmore');
  }
});

test('a large line across many frames and chunks arrives whole', () => {
  const big = 'x'.repeat(3 * 1024 * 1024);
  const wire = Buffer.concat([frame(1, big.slice(0, 1_000_000)), frame(1, big.slice(1_000_000) + '\nnext\n')]);
  const c = collect(4 * 1024 * 1024);
  for (let i = 0; i < wire.length; i += 65536) c.demux.push(wire.subarray(i, i + 65536));
  expect(c.lines.map((l) => l.length)).toEqual([big.length, 4]);
  expect(c.lines[0]).toBe(big);
});

test('a line past the limit is dropped and reported once', () => {
  const c = collect(10);
  c.demux.push(frame(1, 'short\n' + 'y'.repeat(11)));
  expect(c.oversized()).toBe(1);
  expect(c.lines).toEqual(['short']);
});
