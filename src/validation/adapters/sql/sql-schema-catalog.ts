import { sql, type ExpressionBuilder, type Kysely } from 'kysely';
import { decodeKeyParts, encodeCursor, MAX_PAGE_BYTES, rowsWithin } from '../../../shared/pagination.js';
import type { InlineProjection } from '../../../shared/event-store/event-store.js';
import type { SchemaCatalog, StoredSchema, VerdictLog } from '../../application/ports.js';
import type { SchemaDocument, SchemaEvent } from '../../domain/schema-registry.js';
import { SCHEMA_EVENT_TYPES } from '../../domain/schema-registry.js';
import { keyPieces, rowPieces } from '../../../shared/sql/statement-shapes.js';
import { insertTemplate } from '../../../shared/sql/insert-template.js';

type Tables = {
  validation_schemas: {
    event_type: string;
    partner_id: string;
    version: number;
    schema: string | null;
    position: number;
    changed_at: string;
  };
  validation_verdicts: { item_id: string; verdict: string; position: number };
};

const tables = (db: Kysely<object>) => db.withTables<Tables>();

const insertVerdicts = insertTemplate<Tables['validation_verdicts'], { item_id: string }>(['item_id', 'verdict', 'position'], (db, rows) =>
  tables(db)
    .insertInto('validation_verdicts')
    .values(rows)
    .onConflict((oc) => oc.column('item_id').doNothing())
    .returning('item_id'),
);

const ALL = '';

/** Keeps every schema version with the log position it took effect at, in the append's transaction. */
export const schemaHistoryProjection: InlineProjection = {
  name: 'validation.schemas',
  handles: SCHEMA_EVENT_TYPES,
  async apply(db, events) {
    for (const event of events) {
      const { type, data } = event as unknown as SchemaEvent;
      await tables(db)
        .insertInto('validation_schemas')
        .values({
          event_type: data.event_type,
          partner_id: data.partner_id ?? ALL,
          version: data.version,
          schema: type === 'SchemaRegistered' ? JSON.stringify(data.schema) : null,
          position: event.position,
          changed_at: type === 'SchemaRegistered' ? data.registered_at : data.removed_at,
        })
        .onConflict((oc) => oc.doNothing())
        .execute();
    }
  },
};

type Row = Tables['validation_schemas'];

const toStored = (row: Row & { schema: string }): StoredSchema => ({
  eventType: row.event_type,
  partnerId: row.partner_id === ALL ? null : row.partner_id,
  version: row.version,
  schema: JSON.parse(row.schema) as SchemaDocument,
  registeredAt: row.changed_at,
});

const active = (row: Row | undefined): StoredSchema | undefined =>
  row && row.schema !== null ? toStored({ ...row, schema: row.schema }) : undefined;

/** Keys after the cursor's: (event type, source) names one schema, whatever its version. */
function keyAfter(cursor: string) {
  const [eventType, partnerId] = decodeKeyParts(cursor, ['string', 'string']);
  return (eb: ExpressionBuilder<Tables & { s: Row }, 's'>) =>
    eb.or([eb('s.event_type', '>', eventType), eb.and([eb('s.event_type', '=', eventType), eb('s.partner_id', '>', partnerId)])]);
}

export function sqlSchemaCatalog(db: Kysely<object>): SchemaCatalog {
  const latest = (eventType: string, partnerId: string, beforePosition = Number.MAX_SAFE_INTEGER) =>
    tables(db)
      .selectFrom('validation_schemas')
      .selectAll()
      .where('event_type', '=', eventType)
      .where('partner_id', '=', partnerId)
      .where('position', '<', beforePosition)
      .orderBy('position', 'desc')
      .limit(1)
      .executeTakeFirst();

  const latestAt = (eventType: string, partnerId: string, at: string) =>
    tables(db)
      .selectFrom('validation_schemas')
      .selectAll()
      .where('event_type', '=', eventType)
      .where('partner_id', '=', partnerId)
      .where('changed_at', '<=', at)
      .orderBy('changed_at', 'desc')
      .orderBy('position', 'desc')
      .limit(1)
      .executeTakeFirst();

  return {
    async current(key) {
      return active(await latest(key.eventType, key.partnerId ?? ALL));
    },

    async list(page) {
      // Each key's newest version, unless that version removed the schema: sizes first, then the rows of
      // a page of at most MAX_PAGE_BYTES (1,000 schemas of 64 KB made a 64 MB answer).
      let query = tables(db)
        .selectFrom('validation_schemas as s')
        .select(['s.position', 's.event_type', 's.partner_id', sql<number | string>`octet_length(s.schema)`.as('bytes')])
        .where('s.schema', 'is not', null)
        .where(({ not, exists, selectFrom }) =>
          not(
            exists(
              selectFrom('validation_schemas as n')
                .select('n.position')
                .whereRef('n.event_type', '=', 's.event_type')
                .whereRef('n.partner_id', '=', 's.partner_id')
                .whereRef('n.position', '>', 's.position'),
            ),
          ),
        )
        .orderBy('s.event_type')
        .orderBy('s.partner_id')
        .limit(page.limit + 1);
      if (page.cursor !== undefined) query = query.where(keyAfter(page.cursor));
      const sized = await query.execute();
      const taken = rowsWithin(sized, page.limit, MAX_PAGE_BYTES);
      const rows: Row[] = [];
      for (const piece of keyPieces(
        db,
        taken.map((row) => row.position),
      )) {
        rows.push(...(await tables(db).selectFrom('validation_schemas').selectAll().where('position', 'in', piece).execute()));
      }
      const byPosition = new Map(rows.map((row) => [Number(row.position), row]));
      const schemas = taken.flatMap((row) => active(byPosition.get(Number(row.position))) ?? []);
      const last = taken.at(-1);
      return {
        items: schemas,
        nextCursor: sized.length > taken.length && last ? encodeCursor(JSON.stringify([last.event_type, last.partner_id])) : null,
      };
    },

    async inForceAt(eventType, partnerId, position) {
      // A source's own schema wins; when it has none (or it was removed) the one for every source applies.
      return active(await latest(eventType, partnerId, position)) ?? active(await latest(eventType, ALL, position));
    },

    async typesWithSchemas(eventTypes) {
      const found = new Set<string>();
      for (const piece of keyPieces(db, eventTypes)) {
        const rows = await tables(db)
          .selectFrom('validation_schemas')
          .select('event_type')
          .distinct()
          .where('event_type', 'in', piece)
          .execute();
        for (const row of rows) found.add(row.event_type);
      }
      return found;
    },

    async inForceAtTime(eventType, partnerId, at) {
      return active(await latestAt(eventType, partnerId, at)) ?? active(await latestAt(eventType, ALL, at));
    },
  };
}

export function sqlVerdictLog(db: Kysely<object>): VerdictLog {
  return {
    async recordNew(verdicts) {
      const recorded = new Set<string>();
      for (const piece of rowPieces(db, verdicts)) {
        const rows = await insertVerdicts(
          db,
          piece.map((v) => ({ item_id: v.itemId, verdict: v.verdict, position: v.position })),
        );
        for (const row of rows) recorded.add(row.item_id);
      }
      return recorded;
    },
  };
}
