import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import { postgresSchemaOf, type Config } from '../app/config.js';
import { ROLES, type Role } from '../app/roles.js';
import { withoutPassword } from '../shared/postgres/open-postgres.js';
import { CliError } from './cli-error.js';

/**
 * Who runs a distributed role, told by PostgreSQL session advisory locks: one key per role schema
 * (the deployment's DB_SCHEMA_PREFIX and the role) in the role's database. `intake serve` holds it
 * shared (replicas of a role run side by side), `intake replay` tries it exclusive, so either refuses
 * while the other runs. The lock lives as long as the holder's connection: a process that dies, even
 * by SIGKILL, loses its connection and the lock with it, and no stale file or row is left behind.
 */
export interface RoleLock {
  release(): Promise<void>;
}

/** A 64-bit key from the schema name: the same in every process of the deployment. */
export function roleLockKey(schema: string): string {
  return createHash('sha256').update(`intake role ${schema}`).digest().readBigInt64BE(0).toString();
}

function rolesOf(config: Config): Role[] {
  return config.roles === 'all' ? [...ROLES] : config.roles;
}

async function connect(config: Config): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: config.databaseUrl, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
  } catch (error) {
    throw new CliError(`cannot reach PostgreSQL at ${withoutPassword(config.databaseUrl)}: ${(error as Error).message}`);
  }
  return client;
}

/** For `intake replay`: every role of ROLE exclusively, or a CliError naming the role that runs. */
export async function lockRolesForReplay(config: Config, roles: readonly Role[] = rolesOf(config)): Promise<RoleLock> {
  const client = await connect(config);
  // A broken connection means the locks are gone; the rebuild's own pool reports the outage.
  client.on('error', () => undefined);
  try {
    for (const role of roles) {
      const schema = postgresSchemaOf(config, role);
      const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [roleLockKey(schema)]);
      if (!rows[0]?.locked) {
        throw new CliError(
          `ROLE=${role} is running on this deployment (schema ${schema}), or another replay of it is: stop it first, ` +
            'or replay on the running role with POST /api/admin/subscriptions/{name}/replay',
        );
      }
    }
  } catch (error) {
    await client.end().catch(() => undefined);
    throw error;
  }
  return { release: () => client.end().catch(() => undefined) };
}

/**
 * For `intake serve`: every role of ROLE shared, held until released. Refused while a replay of one
 * of them runs. Should the connection break (PostgreSQL restarted), it reconnects and takes the locks again.
 */
export async function lockRolesForServing(
  config: Config,
  logger: Pick<Logger, 'warn' | 'info'>,
  roles: readonly Role[] = rolesOf(config),
): Promise<RoleLock> {
  const keys = roles.map((role) => ({ role, key: roleLockKey(postgresSchemaOf(config, role)) }));
  const take = async (client: pg.Client): Promise<Role | undefined> => {
    for (const { role, key } of keys) {
      const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock_shared($1::bigint) AS locked', [key]);
      if (!rows[0]?.locked) return role;
    }
    return undefined;
  };
  let released = false;
  let retry: NodeJS.Timeout | undefined;
  let client = await connect(config);
  const watch = (current: pg.Client) => {
    current.on('error', (error) => {
      if (released) return;
      logger.warn({ err: error }, 'lost the connection holding the role lock; taking it again');
      void current.end().catch(() => undefined);
      schedule();
    });
  };
  const schedule = () => {
    if (released || retry) return;
    retry = setTimeout(() => {
      retry = undefined;
      void (async () => {
        const next = new pg.Client({ connectionString: config.databaseUrl, connectionTimeoutMillis: 5000 });
        next.on('error', () => undefined);
        try {
          await next.connect();
          const busy = await take(next);
          if (busy) logger.warn({ role: busy }, 'a replay of this role runs: its lock is taken again once it ends');
          if (released || busy) throw new Error('not kept');
          next.removeAllListeners('error');
          client = next;
          watch(next);
          logger.info('role lock taken again');
        } catch {
          await next.end().catch(() => undefined);
          schedule();
        }
      })();
    }, 2000);
    retry.unref();
  };
  watch(client);
  try {
    const busy = await take(client);
    if (busy) {
      throw new CliError(`a replay of ROLE=${busy} is running on this deployment (intake replay): start the role once it has finished`);
    }
  } catch (error) {
    released = true;
    await client.end().catch(() => undefined);
    throw error;
  }
  return {
    async release() {
      released = true;
      if (retry) clearTimeout(retry);
      await client.end().catch(() => undefined);
    },
  };
}
