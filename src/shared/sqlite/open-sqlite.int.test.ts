import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqlite } from './open-sqlite.js';

const dir = mkdtempSync(join(tmpdir(), 'intake-open-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('openSqlite', () => {
  it('names the file when its directory cannot be created', () => {
    writeFileSync(join(dir, 'a-file'), '');
    const path = join(dir, 'a-file', 'intake.db');
    expect(() => openSqlite(path)).toThrow(`cannot open the SQLite database ${path} for writing: EEXIST`);
  });

  it('names the file when SQLite cannot open it', () => {
    const path = join(dir, 'a-directory');
    mkdirSync(path);
    expect(() => openSqlite(path)).toThrow(`cannot open the SQLite database ${path} for writing: unable to open database file`);
  });

  it('opens a writable file', async () => {
    const sqlite = openSqlite(join(dir, 'fine.db'));
    expect(sqlite.raw.pragma('journal_mode', { simple: true })).toBe('wal');
    await sqlite.close();
  });
});
