/** Integration tests talk to a real Docker engine and a real Temporal dev server: give them time, run in band. */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  testTimeout: 120000,
  transform: { '^.+\\.ts$': 'ts-jest' },
  // bin/taskflow.js (run by the CLI suites) loads the compiled dist/: bring it up to date first.
  globalSetup: '<rootDir>/test/helpers/build-dist.js',
};
