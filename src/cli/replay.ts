import type { Logger } from 'pino';
import type { Config } from '../app/config.js';
import { buildDistributed } from '../app/distributed.js';
import { buildEmbedded } from '../app/embedded.js';
import { NotFoundError } from '../shared/errors.js';
import { newSecret, digestOf } from '../shared/secrets.js';

/**
 * Rebuilds views from the event store: the named subscriber's, or every view when none is named.
 * Meant for a stopped server; on a running one use POST /api/admin/subscriptions/{name}/replay.
 */
export async function replay(config: Config, logger: Logger, subscriber: string | undefined): Promise<void> {
  if (config.databaseUrl.startsWith('postgres') && config.natsUrl) return replayRoles(config, logger, subscriber);
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

/**
 * The distributed mode: the roles in ROLE rebuild their views from the broker's stream (each of their
 * durable consumers is rewound), and this returns once they have consumed all it holds.
 */
async function replayRoles(config: Config, logger: Logger, subscriber: string | undefined): Promise<void> {
  const intake = await buildDistributed({ config, logger, adminDigest: digestOf(newSecret('')) });
  try {
    const started = Date.now();
    const replayed: string[] = [];
    for (const role of intake.roles) {
      const names = subscriber === undefined ? role.consumers.replayable() : role.consumers.names().filter((n) => n === subscriber);
      for (const name of names) await role.consumers.replay(name);
      replayed.push(...names);
    }
    if (subscriber !== undefined && replayed.length === 0) {
      const known = intake.roles.flatMap((role) => role.consumers.names());
      throw new NotFoundError(
        'subscriptions.unknown-subscriber',
        `no subscriber named "${subscriber}" in ROLE=${String(config.roles)} (known: ${known.join(', ')})`,
      );
    }
    for (;;) {
      const attached = intake.roles.every((role) => role.consumers.attached());
      const lag = attached
        ? (await Promise.all(intake.roles.map((role) => role.consumers.status()))).flat().reduce((sum, s) => sum + s.lag, 0)
        : -1;
      if (lag === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    logger.info({ replayed, ms: Date.now() - started }, 'replay finished');
  } finally {
    await intake.close();
  }
}
