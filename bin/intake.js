#!/usr/bin/env node
// Loaded dynamically: a start under a low limit of open files fails while Node reads the modules,
// before any of Intake's own messages exist, and says so here rather than with a stack trace.
try {
  await import('../dist/cli/main.js');
} catch (error) {
  if (error?.code !== 'EMFILE') throw error;
  process.stderr.write(
    `intake: ${error.message}: ${'Intake reads a few hundred files while it starts (the modules of its threads); raise the limit of open files, ulimit -n 1024 or more'}\n`,
  );
  process.exit(1);
}
