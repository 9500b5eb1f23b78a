import { hostname } from 'node:os';
import pg from 'pg';
import type { Logger } from 'pino';
import { postgresSchemaOf, type Config } from '../app/config.js';
import { ROLES, type Role } from '../app/roles.js';
import { withoutPassword } from '../shared/postgres/open-postgres.js';
import { schemaLockKey, serverLockKey } from '../shared/postgres/schema-lock.js';
import { CliError } from './cli-error.js';

/**
 * Who works on a PostgreSQL schema, told by session advisory locks (keys in schema-lock.ts): the
 * PostgreSQL counterpart of the SQLite pid file. `intake serve` holds its schemas' keys shared (replicas
 * of a distributed role run side by side; the embedded server also holds its server key exclusively, as
 * one server per database is all it supports); `intake replay` and `intake secret-key adopt` try them
 * exclusively. Either refuses while the other runs. A lock lives as long as its holder's connection: a
 * process that dies, even by SIGKILL, loses its connection and the lock with it, and no stale file or
 * row is left behind.
 *
 * A lock also goes when its connection breaks while the holder runs on (PostgreSQL restarted, the
 * backend terminated). A server then pauses its subscribers and resumes them only once it holds the
 * lock again; its subscriber transactions also take the schema's key (schemaFence), so none commits
 * while a replay that got in meanwhile holds it. A replay that loses its lock stops.
 */
export interface RoleLock {
  release(): Promise<void>;
}

/** Held by a replay (or a key adoption): it must stop when `lost` rejects. */
export interface ExclusiveLock extends RoleLock {
  /** Rejects (with a CliError) once the connection holding the lock is lost, and the lock with it. */
  readonly lost: Promise<never>;
}

/** Held by a server for as long as it runs. */
export interface ServingLock extends RoleLock {
  /** What to pause when the lock is lost, and to resume once it is held again. */
  watch(work: PausableWork): void;
  /** While the lock is lost and could not be taken again, why (another server took it, say). */
  refusal(): string | undefined;
}

export interface PausableWork {
  /** Resolves once the work is paused: only then is the lock taken again. */
  pause(): Promise<void>;
  resume(): void;
}

/** A process holding a lock, as its lock connection names it. */
export interface LockHolder {
  readonly pid: number;
  readonly command: string;
  readonly host: string;
}

interface Wanted {
  readonly key: string;
  readonly mode: 'shared' | 'exclusive';
  /** Why it cannot be taken, given who holds it (when PostgreSQL says). */
  refused(holder: LockHolder | undefined): string;
}

const RETAKE_MS = 2000;

function rolesOf(config: Config): Role[] {
  return config.roles === 'all' ? [...ROLES] : config.roles;
}

/** Where an embedded process keeps its data on PostgreSQL, for messages. */
export const schemaPlace = (config: Config) => `schema ${postgresSchemaOf(config)} at ${withoutPassword(config.databaseUrl)}`;

/** The holder as the SQLite lock's messages name one: `pid 12, intake serve`. */
export function describeHolder(holder: LockHolder | undefined): string {
  if (!holder) return 'its pid is not shown to this database user';
  const elsewhere = holder.host === hostname() ? '' : ` on ${holder.host}`;
  return `pid ${holder.pid}${elsewhere}, intake ${holder.command}`;
}

/**
 * For `intake replay` (and `intake migrate`, and `intake secret-key adopt` of the routing role): every role of ROLE
 * exclusively, or a CliError naming the role that runs.
 */
export function lockRolesForReplay(
  config: Config,
  roles: readonly Role[] = rolesOf(config),
  command: 'replay' | 'secret-key adopt' | 'migrate' = 'replay',
): Promise<ExclusiveLock> {
  return exclusiveLock(
    config,
    command,
    roles.map((role) => {
      const schema = postgresSchemaOf(config, role);
      return {
        key: schemaLockKey(schema),
        mode: 'exclusive',
        refused: () =>
          command === 'replay'
            ? `ROLE=${role} is running on this deployment (schema ${schema}), or another replay of it is: stop it first, ` +
              'or replay on the running role with POST /api/admin/subscriptions/{name}/replay'
            : `ROLE=${role} is running on this deployment (schema ${schema}), or a replay of it is: stop it first`,
      };
    }),
  );
}

/**
 * For `intake serve`: every role of ROLE shared, held until released. Refused while a replay of one
 * of them runs.
 */
export function lockRolesForServing(
  config: Config,
  logger: Pick<Logger, 'warn' | 'info'>,
  roles: readonly Role[] = rolesOf(config),
  retakeMs = RETAKE_MS,
): Promise<ServingLock> {
  const wanted = roles.map((role): Wanted => ({
    key: schemaLockKey(postgresSchemaOf(config, role)),
    mode: 'shared',
    refused: () => `a replay of ROLE=${role} is running on this deployment (intake replay): start the role once it has finished`,
  }));
  return servingLock(config, logger, wanted, retakeMs);
}

/**
 * For the embedded `intake serve` on PostgreSQL: its schema's server key exclusively (one server) and
 * its key shared (no replay meanwhile). Refused, as on SQLite, while another process uses the schema.
 */
export function lockSchemaForServing(config: Config, logger: Pick<Logger, 'warn' | 'info'>, retakeMs = RETAKE_MS): Promise<ServingLock> {
  const schema = postgresSchemaOf(config);
  const refused = (holder: LockHolder | undefined) =>
    `another Intake (${describeHolder(holder)}) is using ${schemaPlace(config)}; stop it first`;
  return servingLock(
    config,
    logger,
    [
      { key: serverLockKey(schema), mode: 'exclusive', refused },
      { key: schemaLockKey(schema), mode: 'shared', refused },
    ],
    retakeMs,
  );
}

/** For `intake replay` and `intake secret-key adopt` of the embedded mode on PostgreSQL: its schema exclusively. */
export function lockSchemaExclusively(
  config: Config,
  command: string,
  refused: (holder: LockHolder | undefined) => string,
): Promise<ExclusiveLock> {
  return exclusiveLock(config, command, [{ key: schemaLockKey(postgresSchemaOf(config)), mode: 'exclusive', refused }]);
}

async function connect(config: Config, command: string): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: config.databaseUrl,
    connectionTimeoutMillis: 5000,
    // A connection that dies unnoticed keeps its holder thinking it holds the lock: probes find out.
    keepAlive: true,
    // Who holds a lock, for the messages of those it refuses (and for anyone reading pg_stat_activity).
    application_name: `intake ${command}, pid ${process.pid} on ${hostname()}`.slice(0, 63),
  });
  // Until someone watches it, a broken connection must not end the process (an unheard 'error' would).
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    throw new CliError(`cannot reach PostgreSQL at ${withoutPassword(config.databaseUrl)}: ${(error as Error).message}`);
  }
  return client;
}

/** Takes each lock in turn; answers the first refused, with the reason (the others taken go with the connection). */
async function take(client: pg.Client, wanted: readonly Wanted[]): Promise<string | undefined> {
  for (const lock of wanted) {
    const statement =
      lock.mode === 'shared'
        ? 'SELECT pg_try_advisory_lock_shared($1::bigint) AS locked'
        : 'SELECT pg_try_advisory_lock($1::bigint) AS locked';
    const { rows } = await client.query<{ locked: boolean }>(statement, [lock.key]);
    if (!rows[0]?.locked) return lock.refused(await holderOf(client, lock.key));
  }
  return undefined;
}

const HOLDER_NAME = /^intake (.+), pid (\d+) on (.*)$/;

/** Who holds a key, from the application name of the connection holding it (another user's may be hidden). */
async function holderOf(client: pg.Client, key: string): Promise<LockHolder | undefined> {
  // A bigint key is held as two 32-bit halves (objsubid 1 marks that form).
  const unsigned = BigInt.asUintN(64, BigInt(key));
  const { rows } = await client.query<{ application_name: string | null }>(
    `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.classid = $1::oid AND l.objid = $2::oid
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      ORDER BY a.backend_start LIMIT 1`,
    [String(unsigned >> 32n), String(unsigned & 0xffffffffn)],
  );
  const match = HOLDER_NAME.exec(rows[0]?.application_name ?? '');
  return match ? { command: match[1] ?? '', pid: Number(match[2]), host: match[3] ?? '' } : undefined;
}

async function exclusiveLock(config: Config, command: string, wanted: readonly Wanted[]): Promise<ExclusiveLock> {
  const client = await connect(config, command);
  let released = false;
  let fail: (error: Error) => void = () => undefined;
  const lost = new Promise<never>((_, reject) => (fail = reject));
  // Only those who wait on it hear of it.
  lost.catch(() => undefined);
  const gone = (error?: Error) => {
    if (released) return;
    released = true;
    fail(
      new CliError(
        `lost the connection to PostgreSQL that held the lock${error ? ` (${error.message})` : ''}: intake ${command} stopped ` +
          'before it finished; run it again',
      ),
    );
  };
  client.on('error', gone);
  client.on('end', () => gone());
  try {
    const refused = await take(client, wanted);
    if (refused) throw new CliError(refused);
  } catch (error) {
    released = true;
    await client.end().catch(() => undefined);
    throw error;
  }
  return {
    lost,
    async release() {
      released = true;
      await client.end().catch(() => undefined);
    },
  };
}

/**
 * Held until released. Should its connection break, the watched work is paused first, then the locks
 * are taken again on a new connection (every `retakeMs`, for as long as PostgreSQL is away or a replay
 * that got in meanwhile runs), and only then is the work resumed.
 */
async function servingLock(
  config: Config,
  logger: Pick<Logger, 'warn' | 'info'>,
  wanted: readonly Wanted[],
  retakeMs: number,
): Promise<ServingLock> {
  let client = await connect(config, 'serve');
  try {
    const refused = await take(client, wanted);
    if (refused) throw new CliError(refused);
  } catch (error) {
    await client.end().catch(() => undefined);
    throw error;
  }

  let released = false;
  let held = true;
  let refusal: string | undefined;
  let work: PausableWork | undefined;
  // The last pause asked for: the work resumes only once it is over.
  let pausing: Promise<void> = Promise.resolve();
  let retry: NodeJS.Timeout | undefined;

  const pause = () => {
    const paused = work ? work.pause() : Promise.resolve();
    pausing = paused.catch((error: unknown) => logger.warn({ err: error }, 'pausing the subscribers failed'));
    return pausing;
  };

  const schedule = () => {
    if (released || retry) return;
    retry = setTimeout(() => {
      retry = undefined;
      void retake();
    }, retakeMs);
  };

  const retake = async () => {
    let next: pg.Client | undefined;
    refusal = undefined;
    try {
      next = await connect(config, 'serve');
      const refused = await take(next, wanted);
      if (refused) {
        refusal = refused;
        logger.warn({ reason: refused }, 'cannot take the lock again yet; the subscribers stay paused');
        throw new Error(refused);
      }
      if (released) throw new Error('released meanwhile');
    } catch {
      await next?.end().catch(() => undefined);
      schedule();
      return;
    }
    client = next;
    held = true;
    refusal = undefined;
    watchConnection(next);
    await pausing;
    if (released || !held) return;
    logger.info('lock taken again; the subscribers resume');
    work?.resume();
  };

  const watchConnection = (current: pg.Client) => {
    const lost = (error?: Error) => {
      if (released || current !== client || !held) return;
      held = false;
      logger.warn({ err: error }, 'lost the connection holding the lock: pausing the subscribers until it is taken again');
      void current.end().catch(() => undefined);
      // Taken again as soon as the work is paused: a second server started in a wait before that won
      // the lock, and this one stayed paused for good.
      void pause().then(retake);
    };
    current.on('error', lost);
    current.on('end', () => lost());
  };
  watchConnection(client);

  return {
    watch(given) {
      work = given;
      // Lost before anyone watched: the work, started meanwhile, waits for the lock like the rest.
      if (!held) void pause();
    },
    refusal: () => (held ? undefined : refusal),
    async release() {
      released = true;
      if (retry) clearTimeout(retry);
      await client.end().catch(() => undefined);
    },
  };
}
