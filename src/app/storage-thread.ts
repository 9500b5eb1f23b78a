/**
 * The storage thread's entry point: it owns the SQLite write connection, runs group commit, the
 * inline projections, every subscriber and the delivery workers, and answers the HTTP thread's
 * appends and procedure calls (see docs/decisions/0018-storage-thread.md).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { systemClock } from '../shared/clock.js';
import { uuidV7 } from '../shared/ids.js';
import { localProcedures } from '../shared/procedures.js';
import { serveStorage } from '../shared/storage-thread/storage-server.js';
import type { StorageMessage } from '../shared/storage-thread/protocol.js';
import { toWire } from '../shared/storage-thread/wire-errors.js';
import type { Config } from './config.js';
import { createLogger } from './logger.js';
import { buildStorageCore } from './storage-core.js';
import { storageControl } from './storage-control.js';

export interface StorageThreadData {
  readonly config: Config;
}

async function run(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('storage-thread.js runs as a worker thread');
  const { config } = workerData as StorageThreadData;
  const logger = createLogger(config.logLevel).child({ thread: 'storage' });
  const procedures = localProcedures();
  try {
    const core = await buildStorageCore({
      config,
      logger,
      clock: systemClock,
      newId: uuidV7,
      procedures,
      processMetrics: false,
      backgroundCheckpoints: true,
    });
    storageControl(procedures, core);
    serveStorage({ port, store: core.store, procedures });
    core.start({ subscribers: true, backgroundWork: true });
  } catch (error) {
    port.postMessage({ type: 'failed', error: toWire(error) } satisfies StorageMessage);
  }
}

await run();
