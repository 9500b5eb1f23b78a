import { statSync } from 'node:fs';
import { createServer } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { ConfigError, isPostgresUrl, type Config } from '../app/config.js';
import { describeAdminCredential, resolveAdminCredential } from '../app/admin-token.js';
import { readableByAll, sqlitePathFromUrl } from '../shared/sqlite/open-sqlite.js';
import { UnavailableError } from '../shared/errors.js';
import { CliError } from './cli-error.js';
import { lockRolesForServing, lockSchemaForServing, type PausableWork, type ServingLock } from './role-lock.js';
import { acquireLock, describeLockHolder, isHolder } from './server-lock.js';

export async function serve(config: Config, logger: Logger): Promise<void> {
  const { distributed } = config;
  if (distributed) {
    // Every role of a distributed deployment must accept the same token: it cannot be generated per process.
    if (!config.adminToken) throw new ConfigError('the distributed mode needs ADMIN_TOKEN, shared by every role');
  }
  assertTokenFitsExposure(config);
  assertDataDirectory(config);
  // Checked before anything opens the database or starts working, so that a second `npm start` says so and exits.
  if (config.port !== 0) await assertPortFree(config.host, config.port);
  const database = isPostgresUrl(config.databaseUrl) ? undefined : sqlitePathFromUrl(config.databaseUrl);
  const lock = database === undefined ? undefined : acquireLock(database, 'serve');
  if (lock && isHolder(lock)) {
    throw new CliError(`another Intake (${describeLockHolder(lock)}) is using ${database}; stop it first`);
  }
  // PostgreSQL keeps no file beside a database: a server marks that it runs with advisory locks instead.
  const schemaLock: ServingLock | undefined = distributed
    ? await lockRolesForServing(config, logger)
    : database === undefined
      ? await lockSchemaForServing(config, logger)
      : undefined;
  const releaseLocks = async () => {
    lock?.release();
    await schemaLock?.release();
  };

  const credential = resolveAdminCredential(config.adminToken, config.dataDir, (token) =>
    process.stdout.write(
      `\nNo ADMIN_TOKEN was set, so one was generated. It is shown only this once; only its digest is stored:\n\n    ${token}\n\n` +
        `Use it as "Authorization: Bearer <token>". Set ADMIN_TOKEN to choose your own.\n\n`,
    ),
  );
  logger.info({ admin_token_source: credential.source }, describeAdminCredential(credential));
  const exposed = database === undefined ? undefined : readableByAll(database);
  if (exposed) logger.warn(exposed);
  const adminDigest = credential.digest;
  let intake: { app: FastifyInstance; close(): Promise<void> };
  let subscribers: PausableWork;
  let stopping = false;
  try {
    // Loaded only now: the contexts are most of the start-up time, and a second start fails before it.
    if (distributed) {
      const built = await (await import('../app/distributed.js')).buildDistributed({ config, logger, adminDigest });
      intake = built;
      subscribers = {
        pause: async () => {
          await Promise.all(built.roles.map((role) => role.consumers.stop()));
        },
        resume() {
          if (!stopping) for (const role of built.roles) role.consumers.start();
        },
      };
    } else {
      // While the lock on the schema is lost, another server may hold it: this one takes no writes.
      let lockLost = false;
      const built = await (
        await import('../app/embedded.js')
      ).buildEmbedded({
        config,
        logger,
        adminDigest,
        storage: config.storageThread ? 'thread' : 'inline',
        writesRefused: () => (lockLost ? lockLostError(schemaLock?.refusal()) : undefined),
      });
      intake = built;
      subscribers = {
        // Everything that writes waits: requests, subscribers and the background work (deliveries).
        pause: async () => {
          lockLost = true;
          await built.subscriptions.stop();
          await built.backgroundWork?.pause();
        },
        resume() {
          lockLost = false;
          if (stopping) return;
          built.subscriptions.start();
          built.backgroundWork?.resume();
        },
      };
    }
  } catch (error) {
    await releaseLocks();
    throw error;
  }
  // Everything that could refuse the start (settings, the database) has accepted it: a generated
  // token is kept and shown now. The port was found free before; should it be taken meanwhile, the
  // token shown stays good for the next start.
  try {
    credential.keep?.();
  } catch (error) {
    await intake.close().catch(() => undefined);
    await releaseLocks();
    throw error;
  }
  // Should the connection holding the lock break, the subscribers wait until it is taken again.
  schemaLock?.watch(subscribers);
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing in-flight requests and commits');
    // Nothing acknowledged waits on this: every 2xx was committed before it was sent. A close stuck on
    // a peer that stopped answering (a broker, a database) must not keep the process from exiting.
    setTimeout(() => {
      logger.error({ signal, afterMs: SHUTDOWN_DEADLINE_MS }, 'shutdown did not finish in time: exiting');
      void releaseLocks().finally(() => process.exit(1));
    }, SHUTDOWN_DEADLINE_MS).unref();
    intake.close().then(
      () => releaseLocks().then(() => process.exit(0)),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        return releaseLocks().then(() => process.exit(1));
      },
    );
  };
  // `on`, not `once`: Ctrl-C on `npm start` reaches the server twice (npm passes it on, and the terminal
  // signals the whole group), and a second signal left to Node's default cut the requests in flight.
  // A closed terminal (SIGHUP) stops it the same way. Set before it listens: a signal that came between
  // the "listening" line and the handlers killed the process without its stop.
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => stop(signal));
  try {
    await intake.app.listen({ port: config.port, host: config.host });
  } catch (error) {
    // Stopped by a signal while it started to listen: the stop closes everything and exits.
    if (stopping) return;
    // The port was taken between the check and now: stop everything that started, then exit.
    await intake.close().catch(() => undefined);
    await releaseLocks();
    throw new CliError(listenFailure(error, config));
  }
}

const SHUTDOWN_DEADLINE_MS = 30_000;

/** DATA_DIR naming a file failed later with a bare ENOTDIR on the first file Intake keeps there. */
function assertDataDirectory(config: Config): void {
  const found = statSync(config.dataDir, { throwIfNoEntry: false });
  if (found && !found.isDirectory()) throw new ConfigError(`DATA_DIR ${config.dataDir} is a file, not a directory`);
}

const lockLostError = (refusal: string | undefined) =>
  new UnavailableError(
    'storage.lock-lost',
    refusal === undefined
      ? 'the connection holding the lock on the database was lost: writes wait until it is taken again'
      : `the connection holding the lock on the database was lost, and it cannot be taken again: ${refusal}`,
    2,
  );

const MIN_EXPOSED_TOKEN_LENGTH = 16;
const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost)$/;

/**
 * A short admin token (the README's `change-me`) is fine for a server only this machine reaches; on an
 * interface others reach, it is a guessable key to everything, so the start is refused.
 */
export function assertTokenFitsExposure(config: Pick<Config, 'adminToken' | 'host' | 'distributed'>): void {
  const token = config.adminToken;
  if (token === undefined || token.length >= MIN_EXPOSED_TOKEN_LENGTH || LOOPBACK.test(config.host)) return;
  // The distributed mode cannot generate one: every role must accept the same token.
  const generated = config.distributed ? '' : ' (or leave ADMIN_TOKEN unset to have one generated)';
  throw new ConfigError(
    `ADMIN_TOKEN has ${token.length} characters and HOST ${config.host} is reachable from other machines: ` +
      `use at least ${MIN_EXPOSED_TOKEN_LENGTH}${generated}, or set HOST=127.0.0.1`,
  );
}

/** Binds the port for a moment: the cheapest way to learn that another process holds it. */
async function assertPortFree(host: string, port: number): Promise<void> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  }).catch((error: unknown) => {
    throw new CliError(listenFailure(error, { host, port }));
  });
}

function listenFailure(error: unknown, { host, port }: Pick<Config, 'host' | 'port'>): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') return `port ${port} on ${host} is already in use (another Intake still running?): stop it or set PORT`;
  if (code === 'EACCES') return `not allowed to listen on port ${port} on ${host}: choose a PORT above 1023`;
  if (code === 'EADDRNOTAVAIL') return `cannot listen on ${host}: no such address on this machine (check HOST)`;
  return `cannot listen on ${host}:${port}: ${(error as Error).message}`;
}
