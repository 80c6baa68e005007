/** The README's configuration table and API reference match the code. */
import fs from 'node:fs';
import path from 'node:path';
import { openApiDocument } from '../src/api/openapi';

const ROOT = path.resolve(__dirname, '..');
const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

test('the configuration table lists exactly the variables src/config.ts reads', () => {
  const source = fs.readFileSync(path.join(ROOT, 'src/config.ts'), 'utf8');
  const schema = source.slice(source.indexOf('const EnvSchema = z.object({'), source.indexOf('});', source.indexOf('const EnvSchema')));
  const inCode = [...schema.matchAll(/^ {2}([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1]).sort();
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
