import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import { isPostgresUrl, type Config } from '../app/config.js';
import { buildDistributedRebuild } from '../app/distributed.js';
import { buildEmbedded } from '../app/embedded.js';
import { NotFoundError } from '../shared/errors.js';
import { newSecret, digestOf } from '../shared/secrets.js';
import { sqlitePathFromUrl } from '../shared/sqlite/open-sqlite.js';
import { CliError } from './cli-error.js';
import type { Output } from './output.js';
import { describeHolder, lockRolesForReplay, lockSchemaExclusively, schemaPlace, type ExclusiveLock } from './role-lock.js';
import { acquireLock, describeLockHolder, isHolder } from './server-lock.js';

/**
 * Rebuilds views from the event store: the named subscriber's, or every view when none is named, and
 * does nothing else (no delivery is sent, no routing replay job moves on: that is the server's work).
 * Meant for a stopped server, and refused while one runs on the database (its pid file is alive, or on
 * PostgreSQL its lock is held): on a running server use POST /api/admin/subscriptions/{name}/replay.
 */
export async function replay(config: Config, logger: Logger, output: Output, subscriber: string | undefined): Promise<void> {
  if (config.distributed) return replayRoles(config, logger, output, subscriber);
  const lock = await lockDatabase(config);
  try {
    // No HTTP is served here: an unguessable digest keeps the (unused) admin API closed. Its subscribers
    // are not fenced: this process holds the lock that fences a server's. No background work either:
    // no delivery worker sends what the stopped server owes, no routing replay job moves on.
    const intake = await buildEmbedded({
      config,
      logger,
      adminDigest: digestOf(newSecret('')),
      startSubscribers: false,
      startBackgroundWork: false,
      fenced: false,
    });
    try {
      const names = subscriber ? [subscriber] : intake.subscriptions.replayable();
      const started = performance.now();
      await untilLost(lock, async () => {
        for (const name of names) await intake.subscriptions.replay(name);
        intake.subscriptions.start();
        await intake.subscriptions.caughtUp(24 * 3600 * 1000);
      });
      const position = (await intake.subscriptions.status())[0]?.head ?? 0;
      const ms = Math.round(performance.now() - started);
      output.result(`replay finished: rebuilt ${names.join(', ')} up to position ${position} in ${ms} ms`, {
        replayed: names,
        position,
        ms,
      });
    } finally {
      await intake.close();
    }
  } finally {
    await lock.release();
  }
}

/** The SQLite file's pid lock, or the PostgreSQL schema's advisory lock: refused, with the same words, while a server runs. */
async function lockDatabase(config: Config): Promise<ExclusiveLock> {
  const refused = (holder: string, place: string) =>
    `a running Intake (${holder}) holds ${place}: stop it first, ` +
    'or replay on the running server with POST /api/admin/subscriptions/{name}/replay';
  if (isPostgresUrl(config.databaseUrl)) {
    return lockSchemaExclusively(config, 'replay', (holder) => refused(describeHolder(holder), schemaPlace(config)));
  }
  const database = sqlitePathFromUrl(config.databaseUrl);
  // A mistyped path would make a new, empty database and report it rebuilt.
  if (database !== ':memory:' && !existsSync(database)) throw new CliError(`there is no database at ${database}: check DATABASE_URL`);
  const lock = acquireLock(database, 'replay');
  if (isHolder(lock)) throw new CliError(refused(describeLockHolder(lock), database));
  return { lost: new Promise<never>(() => undefined), release: async () => lock.release() };
}

/**
 * Runs `work`, or rejects as soon as the lock is lost: the caller then closes what the work runs on, and
 * `abandoned` tells the work to stop.
 */
async function untilLost(lock: ExclusiveLock, work: (abandoned: () => boolean) => Promise<void>): Promise<void> {
  let lost = false;
  const running = work(() => lost);
  // Whatever it does once abandoned is of no interest.
  running.catch(() => undefined);
  try {
    await Promise.race([running, lock.lost]);
  } catch (error) {
    lost = true;
    throw error;
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
      const started = performance.now();
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
      await untilLost(lock, async (abandoned) => {
        while (!abandoned()) {
          const attached = rebuild.roles.every((role) => role.consumers.attached());
          const lag = attached
            ? (await Promise.all(rebuild.roles.map((role) => role.consumers.status()))).flat().reduce((sum, s) => sum + s.lag, 0)
            : -1;
          if (lag === 0) break;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      });
      const ms = Math.round(performance.now() - started);
      output.result(`replay finished: rebuilt ${replayed.join(', ')} in ${ms} ms`, { replayed, ms });
    } finally {
      await rebuild.close();
    }
  } finally {
    await lock.release();
  }
}
