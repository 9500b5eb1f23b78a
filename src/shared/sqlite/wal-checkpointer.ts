import type { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { startWorker } from '../threads/start-worker.js';
import type { CheckpointReport, CheckpointThreadData } from './wal-checkpoint-thread.js';

/**
 * How far the writer lets the WAL grow (in pages) before it checkpoints by itself: a backstop for
 * when the checkpointer falls behind or is down, about 40 MB with 4 KB pages.
 */
export const BACKSTOP_AUTOCHECKPOINT_PAGES = 10_000;

export interface WalCheckpointerOptions {
  readonly path: string;
  readonly logger: Pick<Logger, 'warn' | 'error'>;
  /** How often committed pages are copied into the database file. */
  readonly intervalMs?: number;
  /** Called after each round that copied pages: tests wait on it. */
  readonly onCheckpoint?: (frames: number) => void;
  /** How long the WAL may grow with no frame copied before a warning says what holds it. */
  readonly stalledAfterMs?: number;
}

export interface WalCheckpointer {
  stop(): Promise<void>;
}

const RESTART_DELAYS_MS = [1_000, 2_000, 5_000, 10_000, 30_000];

/**
 * Copies the WAL into the database file from a thread of its own. SQLite's own checkpoint runs in
 * the writer's COMMIT once the WAL passes 1,000 pages, and there its page copy and its two fsyncs
 * took a tenth of the storage thread under load. The writer keeps a checkpoint of its own only as a
 * backstop (BACKSTOP_AUTOCHECKPOINT_PAGES). A thread that dies is started again, with backoff.
 */
export function startWalCheckpointer({
  path,
  logger,
  intervalMs = 100,
  onCheckpoint,
  stalledAfterMs = 30_000,
}: WalCheckpointerOptions): WalCheckpointer {
  let worker: { readonly thread: Worker; readonly exited: Promise<unknown> } | undefined;
  let stopping = false;
  let failures = 0;
  let restart: NodeJS.Timeout | undefined;
  let reportedFailure = false;

  const start = () => {
    const thread = startWorker(import.meta.url, 'wal-checkpoint-thread', {
      workerData: { path, intervalMs, stalledAfterMs } satisfies CheckpointThreadData,
      resourceLimits: { maxOldGenerationSizeMb: 32 },
    });
    worker = { thread, exited: new Promise((resolve) => thread.once('exit', resolve)) };
    thread.on('message', (report: CheckpointReport) => {
      if (report.type === 'checkpointed') {
        failures = 0;
        reportedFailure = false;
        onCheckpoint?.(report.frames);
      } else if (report.type === 'stalled') {
        logger.warn(
          { wal_frames: report.frames, held_for_ms: report.sinceMs },
          'the WAL grows and none of it can be copied into the database: another connection holds an old snapshot ' +
            '(a long read transaction, or a backup with the sqlite3 shell); the file shrinks back once it lets go',
        );
      } else if (!reportedFailure) {
        // Once per streak: a failing checkpoint repeats every round, and the writer's backstop still bounds the WAL.
        reportedFailure = true;
        logger.warn({ reason: report.message }, 'WAL checkpoint failed; the writer checkpoints by itself until it succeeds');
      }
    });
    thread.on('error', (error) => logger.error({ err: error }, 'the WAL checkpoint thread failed'));
    thread.on('exit', () => {
      if (stopping) return;
      const delay = RESTART_DELAYS_MS[Math.min(failures, RESTART_DELAYS_MS.length - 1)] ?? 30_000;
      failures += 1;
      logger.warn({ retryInMs: delay }, 'the WAL checkpoint thread stopped; starting it again');
      restart = setTimeout(start, delay);
      restart.unref();
    });
    thread.unref();
  };
  start();

  return {
    async stop() {
      stopping = true;
      clearTimeout(restart);
      if (!worker) return;
      // Held while it winds down: an unreferenced thread's exit would not keep a caller that has
      // nothing else left (a storage thread failing at start) alive to see it.
      worker.thread.ref();
      worker.thread.postMessage('stop');
      await worker.exited;
    },
  };
}
