#!/usr/bin/env node
// Runs the TypeScript sources directly (transpile only; `npm run typecheck` checks types).
const path = require('node:path');
require('ts-node').register({ transpileOnly: true, project: path.join(__dirname, '..', 'tsconfig.json') });
require('../app/cli')
  .main(process.argv.slice(2))
  .then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`taskflow: ${err && err.message ? err.message : err}\n`);
      process.exit(2);
    },
  );
