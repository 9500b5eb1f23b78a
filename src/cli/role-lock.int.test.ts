import { randomBytes } from 'node:crypto';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { loadConfig, postgresSchemaOf, type Config } from '../app/config.js';
import { UnavailableError } from '../shared/errors.js';
import { schemaFence, schemaLockKey, serverLockKey } from '../shared/postgres/schema-lock.js';
import { testPostgresUrl } from '../shared/postgres/temporary-schema.js';
import {
  describeHolder,
  lockRolesForReplay,
  lockRolesForServing,
  lockSchemaExclusively,
  lockSchemaForServing,
  type PausableWork,
} from './role-lock.js';

if (!testPostgresUrl) console.warn('skipping the role locks: TEST_POSTGRES_URL is not set');

const url = testPostgresUrl ?? '';
const logger = pino({ level: 'silent' });
// A fresh prefix: no other deployment's locks share these keys.
const freshPrefix = () => `lock_${randomBytes(4).toString('hex')}_`;
const configOf = (role: string, prefix: string) =>
  loadConfig({
    DATABASE_URL: url,
    NATS_URL: 'nats://127.0.0.1:1',
    ROLE: role,
    DB_SCHEMA_PREFIX: prefix,
    ADMIN_TOKEN: 'a-token-of-sixteen-chars',
  });
const embeddedConfig = (prefix: string) => loadConfig({ DATABASE_URL: url, DB_SCHEMA_PREFIX: prefix });

/** Ends the session holding a key, as PostgreSQL does on a restart or an administrator's pg_terminate_backend. */
async function terminateHolderOf(key: string): Promise<number> {
  const unsigned = BigInt.asUintN(64, BigInt(key));
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    const terminated = await admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::oid AND objid = $2::oid AND objsubid = 1`,
      [String(unsigned >> 32n), String(unsigned & 0xffffffffn)],
    );
    return terminated.rowCount ?? 0;
  } finally {
    await admin.end();
  }
}

/** Runs the schema's fence in a transaction of its own: a subscriber's commit, as far as the lock goes. */
async function fencedCommit(db: Kysely<object>, config: Config, role?: string): Promise<'committed' | 'held back'> {
  try {
    await db.transaction().execute((trx) => schemaFence(postgresSchemaOf(config, role), { lockWaitMs: 1000 })(trx));
    return 'committed';
  } catch (error) {
    if (error instanceof UnavailableError) return 'held back';
    throw error;
  }
}

function deferred(): { promise: Promise<void>; resolve(): void } {
  let resolve = () => {};
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

describe.skipIf(!testPostgresUrl)('role locks of the distributed mode', () => {
  it('lets replicas of a role serve side by side, refuses its replay while one runs, and allows it once all stopped', async () => {
    const prefix = freshPrefix();
    const config = configOf('routing', prefix);
    const first = await lockRolesForServing(config, logger);
    const second = await lockRolesForServing(config, logger);
    await expect(lockRolesForReplay(config)).rejects.toThrow(/ROLE=routing is running on this deployment/);
    // Another role, or the same role of another deployment, is not concerned.
    await (await lockRolesForReplay(configOf('query', prefix))).release();
    await (await lockRolesForReplay(configOf('routing', `${prefix}b_`))).release();
    await first.release();
    await expect(lockRolesForReplay(config)).rejects.toThrow(/ROLE=routing is running/);
    await second.release();
    const replay = await lockRolesForReplay(config);
    await replay.release();
  });

  it('refuses to serve a role while its replay runs, and a second replay of it', async () => {
    const prefix = freshPrefix();
    const replay = await lockRolesForReplay(configOf('query,routing', prefix));
    await expect(lockRolesForServing(configOf('routing', prefix), logger)).rejects.toThrow(/a replay of ROLE=routing is running/);
    await expect(lockRolesForReplay(configOf('query', prefix))).rejects.toThrow(/ROLE=query is running/);
    await expect(lockRolesForReplay(configOf('routing', prefix), ['routing'], 'secret-key adopt')).rejects.toThrow(
      /ROLE=routing is running on this deployment \(schema lock_\w+_routing\), or a replay of it is: stop it first$/,
    );
    await replay.release();
    await (await lockRolesForServing(configOf('routing', prefix), logger)).release();
  });

  it('holds a replay off while a fenced transaction runs, and fenced transactions back while a replay runs', async () => {
    const config = configOf('routing', freshPrefix());
    const db = new Kysely<object>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 2 }) }) });
    try {
      const inFlight = deferred();
      const entered = deferred();
      const commit = db.transaction().execute(async (trx) => {
        await schemaFence(postgresSchemaOf(config, 'routing'), { lockWaitMs: 1000 })(trx);
        entered.resolve();
        await inFlight.promise;
      });
      await entered.promise;
      // A subscriber's transaction under way is a role at work, whether or not its lock connection is alive.
      await expect(lockRolesForReplay(config)).rejects.toThrow(/ROLE=routing is running/);
      inFlight.resolve();
      await commit;
      const replay = await lockRolesForReplay(config);
      expect(await fencedCommit(db, config, 'routing')).toBe('held back');
      await replay.release();
      expect(await fencedCommit(db, config, 'routing')).toBe('committed');
    } finally {
      await db.destroy();
    }
  });

  it('pauses its work when its connection is terminated, and resumes it only once it holds the lock again, after a replay that got in', async () => {
    const config = configOf('routing', freshPrefix());
    const db = new Kysely<object>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 2 }) }) });
    const seen: string[] = [];
    const refusedAgain = deferred();
    // What the lock logs, as it happens.
    const watching = pino(
      { level: 'info' },
      {
        write(line: string) {
          const message = (JSON.parse(line) as { msg: string }).msg;
          seen.push(message);
          if (message.startsWith('cannot take the lock again')) refusedAgain.resolve();
        },
      },
    );
    const serving = await lockRolesForServing(config, watching, undefined, 20);
    const pausing = deferred();
    const paused = deferred();
    const resumed = deferred();
    const work: PausableWork = {
      async pause() {
        seen.push('paused');
        pausing.resolve();
        // The lock is taken again only once the work is paused: held here, the gap stays open for the replay.
        await paused.promise;
      },
      resume() {
        seen.push('resumed');
        resumed.resolve();
      },
    };
    serving.watch(work);
    try {
      expect(await terminateHolderOf(schemaLockKey(postgresSchemaOf(config, 'routing')))).toBe(1);
      await pausing.promise;
      // In the gap: the lock is free, and a replay takes it.
      const replay = await lockRolesForReplay(config);
      paused.resolve();
      await refusedAgain.promise;
      expect(seen).not.toContain('resumed');
      // Whatever the server still had under way when its connection went cannot commit now.
      expect(await fencedCommit(db, config, 'routing')).toBe('held back');
      await replay.release();
      await resumed.promise;
      expect(seen.slice(-2)).toEqual(['lock taken again; the subscribers resume', 'resumed']);
      await expect(lockRolesForReplay(config)).rejects.toThrow(/ROLE=routing is running/);
    } finally {
      await serving.release();
      await db.destroy();
    }
  });
});

describe.skipIf(!testPostgresUrl)('schema locks of one process on PostgreSQL', () => {
  const refusedBy = (holder: Parameters<typeof describeHolder>[0]) => `held by ${describeHolder(holder)}`;

  it('refuses a second server, a replay and a key adoption while a server runs, naming it as the SQLite lock does', async () => {
    const config = embeddedConfig(freshPrefix());
    const place = `schema ${postgresSchemaOf(config)} at ${url}`;
    const server = await lockSchemaForServing(config, logger);
    try {
      await expect(lockSchemaForServing(config, logger)).rejects.toThrow(
        `another Intake (pid ${process.pid}, intake serve) is using ${place}; stop it first`,
      );
      await expect(lockSchemaExclusively(config, 'replay', refusedBy)).rejects.toThrow(`held by pid ${process.pid}, intake serve`);
      await expect(lockSchemaExclusively(config, 'secret-key adopt', refusedBy)).rejects.toThrow(/intake serve/);
      // A distributed deployment with the same prefix keeps other schemas: it is not concerned.
      await (await lockRolesForReplay(configOf('query', config.schemaPrefix))).release();
    } finally {
      await server.release();
    }
    await (await lockSchemaExclusively(config, 'replay', refusedBy)).release();
  });

  it('refuses a server and a second replay while a replay runs, and lets a server start once it ended', async () => {
    const config = embeddedConfig(freshPrefix());
    const replay = await lockSchemaExclusively(config, 'replay', refusedBy);
    await expect(lockSchemaForServing(config, logger)).rejects.toThrow(`another Intake (pid ${process.pid}, intake replay) is using`);
    await expect(lockSchemaExclusively(config, 'replay', refusedBy)).rejects.toThrow(`held by pid ${process.pid}, intake replay`);
    await replay.release();
    // The refused server let go of what it had taken.
    await (await lockSchemaForServing(config, logger)).release();
  });

  it('takes its lock again as soon as its work is paused, not after a wait a second server could start in, and says who took it if one did', async () => {
    const config = embeddedConfig(freshPrefix());
    // A wait that would outlast the test: the first try must not wait for it.
    const server = await lockSchemaForServing(config, logger, 600_000);
    const resumed = deferred();
    server.watch({ pause: async () => undefined, resume: () => resumed.resolve() });
    try {
      expect(await terminateHolderOf(serverLockKey(postgresSchemaOf(config)))).toBe(1);
      await resumed.promise;
      expect(server.refusal()).toBeUndefined();
      await expect(lockSchemaForServing(config, logger)).rejects.toThrow(/another Intake .* is using/);
    } finally {
      await server.release();
    }

    // Another server got the lock while this one's work was pausing: the reason names it.
    const displaced = await lockSchemaForServing(config, logger, 600_000);
    const pausing = deferred();
    const paused = deferred();
    displaced.watch({
      pause: async () => {
        pausing.resolve();
        await paused.promise;
      },
      resume: () => undefined,
    });
    let other: Awaited<ReturnType<typeof lockSchemaForServing>> | undefined;
    try {
      expect(await terminateHolderOf(serverLockKey(postgresSchemaOf(config)))).toBe(1);
      await pausing.promise;
      other = await lockSchemaForServing(config, logger);
      paused.resolve();
      await vi.waitFor(() => expect(displaced.refusal()).toMatch(/^another Intake \(pid \d+, intake serve\) is using schema/), {
        timeout: 10_000,
      });
    } finally {
      await other?.release();
      await displaced.release();
    }
  });

  it('tells a replay that its lock is lost when its connection is terminated', async () => {
    const config = embeddedConfig(freshPrefix());
    const replay = await lockSchemaExclusively(config, 'replay', refusedBy);
    expect(await terminateHolderOf(schemaLockKey(postgresSchemaOf(config)))).toBe(1);
    await expect(replay.lost).rejects.toThrow(
      /lost the connection to PostgreSQL that held the lock .*intake replay stopped before it finished; run it again/,
    );
    await replay.release();
  });
});
