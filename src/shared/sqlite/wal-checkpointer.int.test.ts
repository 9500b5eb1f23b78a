import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import Database from 'better-sqlite3';
import { openSqlite, WAL_SIZE_LIMIT_BYTES } from './open-sqlite.js';
import { startWalCheckpointer } from './wal-checkpointer.js';

const dir = mkdtempSync(join(tmpdir(), 'intake-checkpoint-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const quietLogger = { warn: vi.fn(), error: vi.fn() };
const pageSize = 4096;

/** About 2 MB of committed rows that only the WAL holds, since the writer never checkpoints itself. */
function writeUncheckpointed(path: string) {
  const sqlite = openSqlite(path, { autocheckpointPages: 0 });
  sqlite.raw.exec('CREATE TABLE blobs (id INTEGER PRIMARY KEY, body TEXT NOT NULL)');
  const insert = sqlite.raw.prepare('INSERT INTO blobs (body) VALUES (?)');
  for (let i = 0; i < 500; i += 1) insert.run('x'.repeat(4000));
  return sqlite;
}

describe('the WAL checkpointer', () => {
  it('sets how many WAL pages the writer lets pass before it checkpoints by itself', async () => {
    const sqlite = openSqlite(join(dir, 'backstop.db'), { autocheckpointPages: 10_000 });
    expect(sqlite.raw.pragma('wal_autocheckpoint', { simple: true })).toBe(10_000);
    await sqlite.close();
  });

  it('copies committed pages into the database file from its own thread while the writer stays open', async () => {
    const path = join(dir, 'copied.db');
    const writer = writeUncheckpointed(path);
    expect(statSync(path).size).toBeLessThan(100 * pageSize);

    const rounds: number[] = [];
    const checkpointer = startWalCheckpointer({ path, logger: quietLogger, intervalMs: 10, onCheckpoint: (frames) => rounds.push(frames) });
    try {
      await vi.waitFor(
        () => {
          expect(statSync(path).size).toBeGreaterThan(400 * pageSize);
          expect(rounds.length).toBeGreaterThan(0);
        },
        { timeout: 10_000, interval: 20 },
      );
      // The rows are still there, read through the writer's connection.
      expect(writer.raw.prepare('SELECT count(*) AS n FROM blobs').get()).toEqual({ n: 500 });
    } finally {
      await checkpointer.stop();
      await writer.close();
    }
    expect(quietLogger.warn).not.toHaveBeenCalled();
  });

  it('starts its thread again after it died, and checkpoints from then on', async () => {
    const path = join(dir, 'late.db');
    const logger = { warn: vi.fn(), error: vi.fn() };
    const rounds: number[] = [];
    // No file yet: the thread cannot open it and dies at once.
    const checkpointer = startWalCheckpointer({ path, logger, intervalMs: 10, onCheckpoint: (frames) => rounds.push(frames) });
    try {
      await vi.waitFor(() => expect(logger.warn).toHaveBeenCalledWith({ retryInMs: 1_000 }, expect.stringContaining('starting it again')));
      expect(logger.error).toHaveBeenCalled();
      const writer = writeUncheckpointed(path);
      try {
        await vi.waitFor(() => expect(rounds.length).toBeGreaterThan(0), { timeout: 10_000, interval: 20 });
        expect(statSync(path).size).toBeGreaterThan(400 * pageSize);
      } finally {
        await writer.close();
      }
    } finally {
      await checkpointer.stop();
    }
  });

  it('warns when a reader holding an old snapshot keeps the WAL from being copied while it grows, and cuts the file back once it lets go', async () => {
    const path = join(dir, 'held.db');
    const writer = writeUncheckpointed(path);
    const logger = { warn: vi.fn(), error: vi.fn() };
    const checkpointer = startWalCheckpointer({ path, logger, intervalMs: 10, stalledAfterMs: 200 });
    const reader = new Database(path, { readonly: true });
    try {
      await vi.waitFor(() => expect(statSync(path).size).toBeGreaterThan(400 * pageSize), { timeout: 10_000, interval: 20 });
      // A read transaction keeps its snapshot: every frame committed after it stays in the WAL.
      reader.exec('BEGIN');
      reader.prepare('SELECT count(*) FROM blobs').get();
      const insert = writer.raw.prepare('INSERT INTO blobs (body) VALUES (?)');
      const walSize = () => statSync(`${path}-wal`).size;
      for (let round = 0; round < 400 && (logger.warn.mock.calls.length === 0 || walSize() <= WAL_SIZE_LIMIT_BYTES); round += 1) {
        for (let i = 0; i < 500; i += 1) insert.run('y'.repeat(4000));
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(logger.warn).toHaveBeenCalledWith(
        expect.objectContaining({ wal_frames: expect.any(Number) }),
        expect.stringContaining('another connection holds an old snapshot'),
      );
      expect(walSize()).toBeGreaterThan(WAL_SIZE_LIMIT_BYTES);
      reader.exec('COMMIT');
      // Copied at last; the writer's next commit restarts the WAL and cuts its file back to the limit.
      await vi.waitFor(
        () => {
          insert.run('z');
          expect(walSize()).toBeLessThanOrEqual(WAL_SIZE_LIMIT_BYTES);
        },
        { timeout: 10_000, interval: 50 },
      );
    } finally {
      reader.close();
      await checkpointer.stop();
      await writer.close();
    }
  });

  it('stops without waiting for a round', async () => {
    const path = join(dir, 'stopped.db');
    const writer = writeUncheckpointed(path);
    const checkpointer = startWalCheckpointer({ path, logger: quietLogger, intervalMs: 60_000 });
    await checkpointer.stop();
    await writer.close();
  });
});
