/**
 * Start-up cost of the `taskflow` command: wall time of `taskflow --help` and of `taskflow status ID`
 * against a server that is not there (a closed loopback port: the request fails at once, so the
 * figure is almost all start-up). Two ways in the same run: the sources through ts-node
 * (transpile only, what bin/taskflow.js did before the compiled build) and bin/taskflow.js as it is
 * now. Each process is started `--runs` times; the table shows the median and the spread.
 * Run: `npx ts-node --transpile-only bench/cli-start.ts [--runs 3] [--no-write]`.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { percentile, writeSection } from './report';

const ROOT = path.resolve(__dirname, '..');

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, 'no-write': { type: 'boolean', default: false } } });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');

/** A loopback port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

/** The old bin/taskflow.js, verbatim but for absolute paths: ts-node registered, then the CLI's sources. */
const OLD_BIN = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'taskflow-bench-')), 'taskflow-ts-node.js');
fs.writeFileSync(
  OLD_BIN,
  `require(${JSON.stringify(require.resolve('ts-node'))}).register({ transpileOnly: true, project: ${JSON.stringify(path.join(ROOT, 'tsconfig.json'))} });
require(${JSON.stringify(path.join(ROOT, 'app/cli'))}).main(process.argv.slice(2)).then((c) => process.exit(c), () => process.exit(2));
`,
);

const ways: { name: string; argv: (args: string[]) => string[] }[] = [
  { name: 'sources through ts-node (before)', argv: (args) => [OLD_BIN, ...args] },
  { name: 'bin/taskflow.js, compiled dist/ (after)', argv: (args) => [path.join(ROOT, 'bin/taskflow.js'), ...args] },
];

const CPU_FILE = path.join(path.dirname(OLD_BIN), 'cpu');

/**
 * Wall and CPU (user + sys, from GNU time) milliseconds of one run. The exit status must be the
 * expected one, or the figure means nothing. CPU is the steadier figure on a busy machine.
 */
function timeOnce(argv: string[], expectStatus: number): { wall: number; cpu: number } {
  const t = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S', '-o', CPU_FILE, process.execPath, ...argv], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, TASKFLOW_TOKEN: 'bench' },
  });
  const wall = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== expectStatus) throw new Error(`${argv.join(' ')} exited ${r.status}, expected ${expectStatus}: ${r.stderr}`);
  const [user, sys] = fs.readFileSync(CPU_FILE, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number);
  return { wall, cpu: (user + sys) * 1000 };
}

async function main(): Promise<void> {
  const url = `http://127.0.0.1:${await closedPort()}`;
  const commands: { label: string; args: string[]; status: number }[] = [
    { label: '`taskflow --help`', args: ['--help'], status: 0 },
    // Exit 2: a failed request (connection refused), after the whole client has loaded.
    { label: '`taskflow status ID` (server unreachable)', args: ['status', '0123456789abcdef0123456789abcdef', '--url', url], status: 2 },
  ];
  const rows: string[] = [];
  const load = os.loadavg()[0].toFixed(1);
  for (const c of commands) {
    for (const w of ways) {
      timeOnce(w.argv(c.args), c.status); // warms the page cache, not counted
      const t = Array.from({ length: runs }, () => timeOnce(w.argv(c.args), c.status));
      const wall = t.map((x) => x.wall);
      const s = (ms: number) => (ms / 1000).toFixed(2);
      const row = `| ${c.label} | ${w.name} | ${runs} | ${s(percentile(wall, 50))} | ${s(Math.min(...wall))} | ${s(Math.max(...wall))} | ${s(
        percentile(
          t.map((x) => x.cpu),
          50,
        ),
      )} |`;
      console.log(row);
      rows.push(row);
    }
  }
  const body = `## CLI start-up: \`taskflow --help\` and \`taskflow status\` (server unreachable)

| command | how it runs | runs | median wall s | min wall s | max wall s | median CPU s (user + sys) |
|---|---|---|---|---|---|---|
${rows.join('\n')}

Goal: ≤ 0.3 s wall for both. "Before" is the sources through ts-node (transpile only), as bin/taskflow.js ran them until the
compiled build (this checkout's sources, so a change to what the CLI loads shows on both rows); "after" is bin/taskflow.js loading dist/ (\`npm run build\`, done by scripts/setup.sh). One unmeasured run of
each first, so both read warm files. Load average (1 min) when the run began: ${load}.`;
  if (values['no-write']) console.log(body);
  else writeSection('cli-start', `npx ts-node --transpile-only bench/cli-start.ts --runs ${runs}`, body);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
