import type { ExpressionBuilder, Kysely } from 'kysely';
import type { InlineProjection } from '../../../shared/event-store/event-store.js';
import { decodeCursor, decodeKeyParts, pageOf } from '../../../shared/pagination.js';
import type { ApplicationDirectory } from '../../application/ports.js';
import { APPLICATION_EVENT_TYPES, type ApplicationEvent } from '../../domain/application.js';

type Tables = {
  applications: { app_id: string; name: string; created_at: string };
  write_keys: { key_id: string; app_id: string; name: string | null; secret_digest: string; issued_at: string; revoked_at: string | null };
};

const tables = (db: Kysely<object>) => db.withTables<Tables>();

/** Applications and keys commit with their events: a key works from the moment its 201 is sent, and stops when revoked. */
export const applicationsProjection: InlineProjection = {
  name: 'applications.directory',
  handles: APPLICATION_EVENT_TYPES,
  async apply(db, events) {
    for (const event of events) {
      const { type, data } = event as unknown as ApplicationEvent;
      if (type === 'ApplicationCreated') {
        await tables(db)
          .insertInto('applications')
          .values(data)
          .onConflict((oc) => oc.doNothing())
          .execute();
      } else if (type === 'ApplicationRenamed') {
        await tables(db).updateTable('applications').set({ name: data.name }).where('app_id', '=', data.app_id).execute();
      } else if (type === 'WriteKeyIssued') {
        await tables(db)
          .insertInto('write_keys')
          .values({
            key_id: data.key_id,
            app_id: data.app_id,
            name: data.name,
            secret_digest: data.secret_digest,
            issued_at: data.issued_at,
            revoked_at: null,
          })
          .onConflict((oc) => oc.doNothing())
          .execute();
      } else {
        await tables(db).updateTable('write_keys').set({ revoked_at: data.revoked_at }).where('key_id', '=', data.key_id).execute();
      }
    }
  },
};

/** Keys after the cursor's, oldest first: issued_at never changes, and the id settles ties. */
function issuedAfter(cursor: string) {
  const [issuedAt, keyId] = decodeKeyParts(cursor, ['string', 'string']);
  return (eb: ExpressionBuilder<Tables, 'write_keys'>) =>
    eb.or([eb('issued_at', '>', issuedAt), eb.and([eb('issued_at', '=', issuedAt), eb('key_id', '>', keyId)])]);
}

export function sqlApplicationDirectory(db: Kysely<object>): ApplicationDirectory {
  const toApp = (row: Tables['applications']) => ({ appId: row.app_id, name: row.name, createdAt: row.created_at });
  const toKey = (row: Tables['write_keys']) => ({
    keyId: row.key_id,
    appId: row.app_id,
    name: row.name,
    issuedAt: row.issued_at,
    revokedAt: row.revoked_at,
  });
  return {
    async get(appId) {
      const row = await tables(db).selectFrom('applications').selectAll().where('app_id', '=', appId).executeTakeFirst();
      return row && toApp(row);
    },
    async list(page) {
      let query = tables(db)
        .selectFrom('applications')
        .selectAll()
        .orderBy('app_id')
        .limit(page.limit + 1);
      if (page.cursor !== undefined) query = query.where('app_id', '>', decodeCursor(page.cursor));
      return pageOf((await query.execute()).map(toApp), page.limit, (app) => app.appId);
    },
    async keysOf(appId, page) {
      let query = tables(db)
        .selectFrom('write_keys')
        .selectAll()
        .where('app_id', '=', appId)
        .orderBy('issued_at')
        .orderBy('key_id')
        .limit(page.limit + 1);
      if (page.cursor !== undefined) query = query.where(issuedAfter(page.cursor));
      return pageOf((await query.execute()).map(toKey), page.limit, (key) => [key.issuedAt, key.keyId]);
    },
    async key(keyId) {
      const row = await tables(db).selectFrom('write_keys').selectAll().where('key_id', '=', keyId).executeTakeFirst();
      return row && { ...toKey(row), secretDigest: Buffer.from(row.secret_digest, 'hex') };
    },
  };
}
