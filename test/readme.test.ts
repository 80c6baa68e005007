/** The README's configuration table and API reference match the code. */
import fs from 'node:fs';
import path from 'node:path';
import { openApiDocument } from '../src/api/openapi';
import { CONFIG_VARIABLES } from '../src/config';
import { Metrics } from '../src/metrics';
import { LIMIT_DEFINITIONS } from '../sandbox';
import { QUOTA_DEFINITIONS, RETENTION_DEFINITIONS } from '../src/quotas/definitions';

const ROOT = path.resolve(__dirname, '..');
const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

test('the configuration table lists exactly the variables src/config.ts reads', () => {
  const inCode = [...CONFIG_VARIABLES].sort();
  const table = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('\n## ', readme.indexOf('## Configuration') + 5));
  const inReadme = [...table.matchAll(/^\| `([A-Z][A-Z0-9_]+)` \|/gm)].map((m) => m[1]).sort();
  expect(inCode.length).toBeGreaterThan(10);
  expect(inReadme).toEqual(inCode);
});

test('the API reference names every route of the OpenAPI document', () => {
  const doc = openApiDocument() as { paths: Record<string, Record<string, unknown>> };
  for (const [p, ops] of Object.entries(doc.paths)) {
    for (const method of Object.keys(ops)) {
      const route = p.replace(/\/$/, '/');
      expect(readme).toContain(`\`${method.toUpperCase()} ${route}`);
    }
  }
});

test('the configuration table gives each sandbox limit the default of its one definition', () => {
  for (const d of Object.values(LIMIT_DEFINITIONS)) {
    const row = readme.split('\n').find((l) => l.startsWith(`| \`${d.env}\` |`));
    expect(row).toContain(`| \`${d.default}\` |`);
  }
});

test('the configuration table gives each quota and retention setting the default of its one definition', () => {
  for (const d of [...Object.values(QUOTA_DEFINITIONS), ...Object.values(RETENTION_DEFINITIONS)]) {
    const row = readme.split('\n').find((l) => l.startsWith(`| \`${d.env}\` |`));
    expect(row).toContain(`| \`${d.default}\` |`);
  }
});

test("the metrics table names exactly TaskFlow's own metrics", async () => {
  const metrics = new Metrics()
    .watchPools(() => ({ validation: { ready: 0, starting: 0 }, checker: { idle: 0, busy: 0, starting: 0 } }))
    .sandboxRuntime('runsc', { version: '0.0~20240729.0', platform: 'systrap' })
    .watchQueues(async () => []);
  const inCode = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name).sort();
  const inReadme = [...readme.matchAll(/^\| `(taskflow_[a-z_]+)` \|/gm)].map((m) => m[1]).sort();
  expect(inCode.length).toBeGreaterThan(5);
  expect(inReadme).toEqual(inCode);
});

test("the validation policy lists exactly the checker's FORBIDDEN_MODULES, the one list of modules whose import is an error", () => {
  const checker = fs.readFileSync(path.join(ROOT, 'sandbox', 'image', 'checker.py'), 'utf8');
  const block = checker.slice(checker.indexOf('FORBIDDEN_MODULES = {'), checker.indexOf('\n}\n', checker.indexOf('FORBIDDEN_MODULES = {')));
  const inCode = [...block.matchAll(/"([\w.]+)": [A-Z]+/g)].map((m) => m[1]).sort();
  expect(inCode).toEqual(expect.arrayContaining(['subprocess', 'socket', 'ctypes', 'multiprocessing']));
  const start = readme.indexOf('- `forbidden_import`:');
  const item = readme.slice(start, readme.indexOf('\n\n', start));
  // Every `name` in that item, the words around the list aside (an NFKC spelling is not ASCII, so not matched).
  const prose = ['forbidden_import', 'FORBIDDEN_MODULES', 'import', 'from', '__import__', 'importlib.import_module'];
  const inReadme = [...item.matchAll(/`([a-z_][\w.]*)`/gi)].map((m) => m[1]).filter((m) => !prose.includes(m));
  expect([...new Set(inReadme)].sort()).toEqual(inCode);
});
