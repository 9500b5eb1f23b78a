#!/usr/bin/env node
// Loaded dynamically: a start under a low limit of open files fails while Node reads the modules,
// before any of Intake's own messages exist, and says so here rather than with a stack trace.
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';

try {
  await import('../dist/cli/main.js');
} catch (error) {
  if (!outOfFiles(error)) throw error;
  process.stderr.write(
    `intake: ${error.code === 'EMFILE' ? error.message : `EMFILE: too many open files, reading the modules (${error.message.split('\n')[0]})`}: ${'Intake reads a few hundred files while it starts (the modules of its threads); raise the limit of open files, ulimit -n 1024 or more'}\n`,
  );
  process.exit(1);
}

/**
 * Out of file descriptors. Node's module resolver turns a package file it could not open into "Cannot
 * find package" (naming the index.js it tried last) without the EMFILE: a module reported missing from
 * a directory that is there on disk is the same case.
 */
function outOfFiles(error) {
  if (error?.code === 'EMFILE') return true;
  if (error?.code !== 'ERR_MODULE_NOT_FOUND') return false;
  const named = /Cannot find (?:package|module) '([^']+)'/.exec(error.message)?.[1];
  return named !== undefined && named.startsWith('/') && (existsSync(named) || existsSync(dirname(named)));
}
