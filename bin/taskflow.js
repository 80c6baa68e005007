#!/usr/bin/env node
// Runs the compiled CLI (dist/, made by `npm run build`; scripts/setup.sh does it and `npm pack` ships it):
// no TypeScript at run time.
let cli;
try {
  cli = require('../dist/app/cli');
} catch (err) {
  if (err && err.code === 'MODULE_NOT_FOUND' && String(err.message).includes('dist/app/cli')) {
    process.stderr.write('taskflow: dist/ is missing: run `npm run build` (or scripts/setup.sh) first\n');
    process.exit(2);
  }
  throw err;
}
cli.main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`taskflow: ${err && err.message ? err.message : err}\n`);
    process.exit(2);
  },
);
