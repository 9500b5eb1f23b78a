/**
 * The WAL checkpointer's thread: it copies committed pages from the write-ahead log into the
 * database file on a connection of its own, so the writer does not stop for that copy and its
 * fsync (see wal-checkpointer.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

export interface CheckpointThreadData {
  readonly path: string;
  readonly intervalMs: number;
}

export type CheckpointReport =
  { readonly type: 'checkpointed'; readonly frames: number } | { readonly type: 'failed'; readonly message: string };

interface CheckpointRow {
  readonly busy: number;
  readonly log: number;
  readonly checkpointed: number;
}

const port = parentPort;
if (!port) throw new Error('wal-checkpoint-thread.js runs as a worker thread');
const { path, intervalMs } = workerData as CheckpointThreadData;
const db = new Database(path, { fileMustExist: true });
let timer: NodeJS.Timeout | undefined;
let copied = 0;

function checkpoint(): void {
  try {
    // PASSIVE never waits for the writer or readers: it copies what it can and leaves the rest for the next round.
    const [row] = db.pragma('wal_checkpoint(PASSIVE)') as CheckpointRow[];
    if (row && row.checkpointed > copied) port?.postMessage({ type: 'checkpointed', frames: row.checkpointed } satisfies CheckpointReport);
    copied = row?.checkpointed ?? 0;
  } catch (error) {
    port?.postMessage({ type: 'failed', message: (error as Error).message } satisfies CheckpointReport);
  }
  timer = setTimeout(checkpoint, intervalMs);
}

port.on('message', (message: unknown) => {
  if (message !== 'stop') return;
  clearTimeout(timer);
  db.close();
  port.close();
});
checkpoint();
