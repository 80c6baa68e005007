/**
 * The Temporal settings live in one file (scripts/temporal-dev-server.json); the compose cluster must carry the
 * same dynamic config, and the dev servers TaskFlow starts must get exactly those flags.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import DEV_SERVER from '../scripts/temporal-dev-server.json';
import { devServerArgs } from './helpers/temporal';

const ROOT = path.join(__dirname, '..');

/** `key:\n  - value: V` entries of the compose file's inline dynamic config, V as written (YAML flow scalars). */
function composeDynamicConfig(): Map<string, string> {
  const text = fs.readFileSync(path.join(ROOT, 'docker-compose.temporal.yml'), 'utf8');
  const block = text.split(/^\s*temporal-dynamicconfig:\s*$/m)[1]?.split(/^\S/m)[0] ?? '';
  const out = new Map<string, string>();
  for (const m of block.matchAll(/^\s+([\w.]+):\s*\n\s+- value: (.+?)\s*$/gm)) out.set(m[1], m[2]);
  return out;
}

describe('Temporal settings', () => {
  test('the compose cluster has every dev-server dynamic config value', () => {
    const compose = composeDynamicConfig();
    expect(compose.size).toBeGreaterThan(0);
    for (const [key, { value }] of Object.entries(DEV_SERVER.dynamicConfig)) {
      expect([key, compose.get(key)]).toEqual([key, JSON.stringify(value)]);
    }
  });

  test('dev-server arguments: dynamic config always, SQLite pragmas only with a database file', () => {
    const keys = Object.keys(DEV_SERVER.dynamicConfig);
    const inMemory = devServerArgs();
    expect(inMemory.filter((a) => a === '--dynamic-config-value')).toHaveLength(keys.length);
    expect(inMemory).toContain('history.transferProcessorMaxPollRPS=10000');
    expect(inMemory).toContain('history.timerProcessorMaxTimeShift="10ms"');
    expect(inMemory).not.toContain('--sqlite-pragma');
    const file = devServerArgs({ dbFile: true });
    expect(file).toEqual(expect.arrayContaining(['--sqlite-pragma', 'journal_mode=wal', 'synchronous=NORMAL']));
  });

  test('scripts/start.sh builds the same arguments (its node snippet, run as the script runs it)', () => {
    const script = fs.readFileSync(path.join(ROOT, 'scripts/start.sh'), 'utf8');
    const snippet = script.match(/node -e '([^']+)' "\$ROOT\/scripts\/temporal-dev-server\.json"/)?.[1];
    expect(snippet).toBeDefined();
    const out = execFileSync('node', ['-e', snippet!, path.join(ROOT, 'scripts/temporal-dev-server.json')], { encoding: 'utf8' });
    expect(out.trimEnd().split('\n')).toEqual(devServerArgs({ dbFile: true }));
  });
});
