/**
 * How tests run the `intake` command as a user does: the built CLI, which vitest's global setup
 * rebuilds first when a source is newer (test/support/build-if-stale.ts). Run through tsx instead,
 * each start compiled hundreds of modules in both threads: twice the start-up time, and the CLI
 * tests alone took five minutes of a CI run on the 2-core machine.
 */
export const INTAKE_CLI: readonly string[] = ['bin/intake.js'];
