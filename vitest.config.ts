import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'bench/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Most test files wait on servers, disks and timers rather than the CPU, and each one uses its own
    // ports and databases; vitest's default (cores - 1) would run them one at a time on 2 cores.
    maxWorkers: 2,
    globalSetup: ['test/support/build-if-stale.ts'],
  },
});
