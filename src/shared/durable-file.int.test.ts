import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createFileDurably } from './durable-file.js';

describe('a file created durably on a full disk', () => {
  it.skipIf(process.getuid?.() !== 0)('fails naming the file, and leaves no temporary file behind', (context) => {
    const mountPoint = mkdtempSync(join(tmpdir(), 'intake-full-'));
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mountPoint]).status !== 0)
      return context.skip('cannot mount a tmpfs here');
    try {
      // Fill it, leaving less than a page.
      try {
        writeFileSync(join(mountPoint, 'filler'), Buffer.alloc(1024 * 1024));
      } catch {
        // ENOSPC: full, as wanted.
      }
      const file = join(mountPoint, 'secret-key');
      let failure: NodeJS.ErrnoException | undefined;
      try {
        createFileDurably(file, 'k'.repeat(64 * 1024));
      } catch (error) {
        failure = error as NodeJS.ErrnoException;
      }
      expect(failure).toMatchObject({ code: 'ENOSPC', path: file });
      expect(readdirSync(mountPoint).sort()).toEqual(['filler']);
    } finally {
      spawnSync('umount', [mountPoint]);
      rmSync(mountPoint, { recursive: true, force: true });
    }
  });
});
