import { defineConfig } from 'vitest/config';

// Tests talk to a real Postgres. Each test file gets its own database cloned from a migrated
// template (see test/support/global-setup.ts), so files can run in parallel without sharing rows.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
