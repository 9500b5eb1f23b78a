import type { Logger } from 'pino';
import type { Config } from '../app/config.js';
import { buildEmbedded } from '../app/embedded.js';
import { newSecret, digestOf } from '../shared/secrets.js';

/**
 * Rebuilds views from the event store: the named subscriber's, or every view when none is named.
 * Meant for a stopped server; on a running one use POST /api/admin/subscriptions/{name}/replay.
 */
export async function replay(config: Config, logger: Logger, subscriber: string | undefined): Promise<void> {
  // No HTTP is served here: an unguessable digest keeps the (unused) admin API closed.
  const intake = await buildEmbedded({ config, logger, adminDigest: digestOf(newSecret('')), startSubscribers: false });
  try {
    const names = subscriber ? [subscriber] : intake.subscriptions.replayable();
    for (const name of names) await intake.subscriptions.replay(name);
    intake.subscriptions.start();
    const started = Date.now();
    await intake.subscriptions.caughtUp(24 * 3600 * 1000);
    const status = await intake.subscriptions.status();
    logger.info({ replayed: names, ms: Date.now() - started, position: status[0]?.head ?? 0 }, 'replay finished');
  } finally {
    await intake.close();
  }
}
