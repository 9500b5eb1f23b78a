import type { Logger } from 'pino';
import { isPostgresUrl, type Config } from '../app/config.js';
import { buildDistributedRebuild } from '../app/distributed.js';
import { buildEmbedded } from '../app/embedded.js';
import { NotFoundError } from '../shared/errors.js';
import { newSecret, digestOf } from '../shared/secrets.js';
import { sqlitePathFromUrl } from '../shared/sqlite/open-sqlite.js';
import { CliError } from './cli-error.js';
import type { Output } from './output.js';
import { lockRolesForReplay } from './role-lock.js';
import { acquireLock, isHolder } from './server-lock.js';

/**
 * Rebuilds views from the event store: the named subscriber's, or every view when none is named.
 * Meant for a stopped server, and refused while one runs on the database (its pid file is alive):
 * on a running server use POST /api/admin/subscriptions/{name}/replay.
 */
export async function replay(config: Config, logger: Logger, output: Output, subscriber: string | undefined): Promise<void> {
  if (config.distributed) return replayRoles(config, logger, output, subscriber);
  // On PostgreSQL the embedded server holds no file lock: the operator makes sure it is stopped.
  const database = isPostgresUrl(config.databaseUrl) ? undefined : sqlitePathFromUrl(config.databaseUrl);
  const lock = database === undefined ? undefined : acquireLock(database, 'replay');
  if (lock && isHolder(lock)) {
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
    lock?.release();
  }
}

/**
 * The distributed mode: the roles in ROLE rebuild their views from the broker's stream (each of their
 * durable consumers is rewound), and this returns once they have consumed all it holds. Only those
 * subscribers run here, and only while no process serves these roles (their advisory locks).
 */
async function replayRoles(config: Config, logger: Logger, output: Output, subscriber: string | undefined): Promise<void> {
  const lock = await lockRolesForReplay(config);
  try {
    const rebuild = await buildDistributedRebuild({ config, logger, subscriber });
    try {
      const started = Date.now();
      const replayed: string[] = [];
      for (const role of rebuild.roles) {
        for (const name of role.consumers.names()) await role.consumers.replay(name);
        replayed.push(...role.consumers.names());
      }
      if (subscriber !== undefined && replayed.length === 0) {
        throw new NotFoundError(
          'subscriptions.unknown-subscriber',
          `no subscriber named "${subscriber}" in ROLE=${String(config.roles)} (known: ${rebuild.known.join(', ')})`,
        );
      }
      if (replayed.length === 0) {
        // validation, processing, routing, tracking: their subscribers record facts, or there are none.
        output.result(`nothing to replay: ROLE=${String(config.roles)} keeps no views to rebuild`, { replayed, ms: 0 });
        return;
      }
      for (const role of rebuild.roles) role.consumers.start();
      for (;;) {
        const attached = rebuild.roles.every((role) => role.consumers.attached());
        const lag = attached
          ? (await Promise.all(rebuild.roles.map((role) => role.consumers.status()))).flat().reduce((sum, s) => sum + s.lag, 0)
          : -1;
        if (lag === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const ms = Date.now() - started;
      output.result(`replay finished: rebuilt ${replayed.join(', ')} in ${ms} ms`, { replayed, ms });
    } finally {
      await rebuild.close();
    }
  } finally {
    await lock.release();
  }
}
