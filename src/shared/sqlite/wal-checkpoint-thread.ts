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
  /** How long the WAL may grow with no frame copied before it is reported as held back. */
  readonly stalledAfterMs: number;
}

export type CheckpointReport =
  | { readonly type: 'checkpointed'; readonly frames: number }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'stalled'; readonly frames: number; readonly sinceMs: number };

interface CheckpointRow {
  readonly busy: number;
  readonly log: number;
  readonly checkpointed: number;
}

const port = parentPort;
if (!port) throw new Error('wal-checkpoint-thread.js runs as a worker thread');
const { path, intervalMs, stalledAfterMs } = workerData as CheckpointThreadData;
const db = new Database(path, { fileMustExist: true });
let timer: NodeJS.Timeout | undefined;
let copied = 0;
/** When a round last copied a frame, or found nothing to copy. */
let progressAt = performance.now();
let toldStalled = false;

function checkpoint(): void {
  try {
    // PASSIVE never waits for the writer or readers: it copies what it can and leaves the rest for the next round.
    const [row] = db.pragma('wal_checkpoint(PASSIVE)') as CheckpointRow[];
    if (row && row.checkpointed > copied) port?.postMessage({ type: 'checkpointed', frames: row.checkpointed } satisfies CheckpointReport);
    const now = performance.now();
    // A connection holding an old snapshot (a long read, a backup) keeps every later frame in the WAL,
    // which grows with each commit until that connection lets go.
    if (!row || row.checkpointed !== copied || row.checkpointed >= row.log) {
      progressAt = now;
      toldStalled = false;
    } else if (!toldStalled && now - progressAt >= stalledAfterMs) {
      toldStalled = true;
      port?.postMessage({ type: 'stalled', frames: row.log, sinceMs: Math.round(now - progressAt) } satisfies CheckpointReport);
    }
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
