import type { Logger } from 'pino';
import type { Config } from '../app/config.js';
import { buildEmbedded } from '../app/embedded.js';
import { newSecret, digestOf } from '../shared/secrets.js';
import { sqlitePathFromUrl } from '../shared/sqlite/open-sqlite.js';
import { CliError } from './cli-error.js';
import type { Output } from './output.js';
import { acquireLock, isHolder } from './server-lock.js';

/**
 * Rebuilds views from the event store: the named subscriber's, or every view when none is named.
 * Meant for a stopped server, and refused while one runs on the database (its pid file is alive):
 * on a running server use POST /api/admin/subscriptions/{name}/replay.
 */
export async function replay(config: Config, logger: Logger, output: Output, subscriber: string | undefined): Promise<void> {
  if (config.databaseUrl.startsWith('postgres')) {
    throw new CliError(
      'intake replay rebuilds the embedded SQLite views; in distributed mode use POST /api/admin/subscriptions/{name}/replay',
    );
  }
  const database = sqlitePathFromUrl(config.databaseUrl);
  const lock = acquireLock(database, 'replay');
  if (isHolder(lock)) {
    throw new CliError(
      `a running Intake (pid ${lock.pid}, intake ${lock.command}) holds ${database}: stop it first, ` +
        'or replay on the running server with POST /api/admin/subscriptions/{name}/replay',
    );
  }
  try {
    // No HTTP is served here: an unguessable digest keeps the (unused) admin API closed.
    const intake = await buildEmbedded({ config, logger, adminDigest: digestOf(newSecret('')), startSubscribers: false });
    try {
      const names = subscriber ? [subscriber] : intake.subscriptions.replayable();
      for (const name of names) await intake.subscriptions.replay(name);
      intake.subscriptions.start();
      const started = Date.now();
      await intake.subscriptions.caughtUp(24 * 3600 * 1000);
      const position = (await intake.subscriptions.status())[0]?.head ?? 0;
      const ms = Date.now() - started;
      output.result(`replay finished: rebuilt ${names.join(', ')} up to position ${position} in ${ms} ms`, {
        replayed: names,
        position,
        ms,
      });
    } finally {
      await intake.close();
    }
  } finally {
    lock.release();
  }
}
