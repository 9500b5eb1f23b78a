import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createFileDurably } from './durable-file.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('a file created durably', () => {
  it('holds its content with the mode asked for, and leaves no temporary file behind', () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-durable-'));
    dirs.push(dir);
    const file = join(dir, 'secret-key');
    createFileDurably(file, 'abc\n');
    expect(readFileSync(file, 'utf8')).toBe('abc\n');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['secret-key']);
  });

  it('is never replaced: a second creation fails with EEXIST and leaves the first content', () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-durable-'));
    dirs.push(dir);
    const file = join(dir, 'secret-key');
    createFileDurably(file, 'first\n');
    expect(() => createFileDurably(file, 'second\n')).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    expect(readFileSync(file, 'utf8')).toBe('first\n');
    expect(readdirSync(dir)).toEqual(['secret-key']);
  });
});
