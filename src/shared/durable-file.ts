import { closeSync, fsyncSync, linkSync, openSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Creates `file` holding `content`, or throws EEXIST when it exists: two processes starting at once
 * never both create it. The content is written and synced under a temporary name first and linked into
 * place, then the directory is synced: a crash or power loss leaves the file whole or absent, never
 * empty or half-written (an empty key file would refuse every later start), and never lost once the
 * database has recorded that it exists.
 */
export function createFileDurably(file: string, content: string, mode = 0o600): void {
  const temporary = `${file}.${process.pid}.tmp`;
  const descriptor = openSync(temporary, 'wx', mode);
  try {
    try {
      writeSync(descriptor, content);
      fsyncSync(descriptor);
    } finally {
      closeSync(descriptor);
    }
    linkSync(temporary, file);
  } catch (error) {
    // Named, since a write error names no file: on a full disk it said only "ENOSPC: …, write".
    const code = (error as NodeJS.ErrnoException).code;
    throw code === 'ENOSPC' || code === 'EDQUOT'
      ? Object.assign(error as Error, { path: (error as NodeJS.ErrnoException).path ?? file })
      : error;
  } finally {
    // Whatever happened, no half-written file is left beside the real one.
    rmSync(temporary, { force: true });
  }
  syncDirectory(dirname(file));
}

function syncDirectory(directory: string): void {
  const descriptor = openSync(directory, 'r');
  try {
    fsyncSync(descriptor);
  } finally {
    closeSync(descriptor);
  }
}
