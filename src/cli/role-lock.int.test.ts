import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { loadConfig, postgresSchemaOf } from '../app/config.js';
import { testPostgresUrl } from '../shared/postgres/temporary-schema.js';
import { lockRolesForReplay, lockRolesForServing, roleLockKey } from './role-lock.js';

if (!testPostgresUrl) console.warn('skipping the role locks: TEST_POSTGRES_URL is not set');

const logger = pino({ level: 'silent' });
// A fresh prefix: no other deployment's locks share these keys.
const configOf = (role: string, prefix: string) =>
  loadConfig({
    DATABASE_URL: testPostgresUrl ?? '',
    NATS_URL: 'nats://127.0.0.1:1',
    ROLE: role,
    DB_SCHEMA_PREFIX: prefix,
    ADMIN_TOKEN: 'a-token-of-sixteen-chars',
  });

describe.skipIf(!testPostgresUrl)('role locks of the distributed mode', () => {
  it('lets replicas of a role serve side by side, refuses its replay while one runs, and allows it once all stopped', async () => {
    const prefix = `lock_${randomBytes(4).toString('hex')}_`;
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
    const prefix = `lock_${randomBytes(4).toString('hex')}_`;
    const replay = await lockRolesForReplay(configOf('query,routing', prefix));
    await expect(lockRolesForServing(configOf('routing', prefix), logger)).rejects.toThrow(/a replay of ROLE=routing is running/);
    await expect(lockRolesForReplay(configOf('query', prefix))).rejects.toThrow(/ROLE=query is running/);
    await replay.release();
    await (await lockRolesForServing(configOf('routing', prefix), logger)).release();
  });

  it('takes the lock again when its connection breaks (PostgreSQL restarted, a backend terminated)', async () => {
    const prefix = `lock_${randomBytes(4).toString('hex')}_`;
    const config = configOf('routing', prefix);
    const serving = await lockRolesForServing(config, logger);
    const key = BigInt.asUintN(64, BigInt(roleLockKey(postgresSchemaOf(config, 'routing'))));
    const admin = new pg.Client({ connectionString: testPostgresUrl });
    await admin.connect();
    try {
      const terminated = await admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::oid AND objid = $2::oid AND objsubid = 1`,
        [String(key >> 32n), String(key & 0xffffffffn)],
      );
      expect(terminated.rowCount).toBe(1);
      const deadline = Date.now() + 10_000;
      let refused = false;
      while (!refused && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        refused = await lockRolesForReplay(config).then(
          (lock) => lock.release().then(() => false),
          () => true,
        );
      }
      expect(refused, 'the serving lock was taken again').toBe(true);
    } finally {
      await admin.end();
      await serving.release();
    }
  });
});
