import { PostgresAdapter, sql, type Expression, type Kysely, type SelectQueryBuilder, type SqlBool } from 'kysely';
import { MAX_ITEM_PAGE_BYTES, rowsWithin } from '../../../shared/pagination.js';
import type { ItemViews } from '../../application/ports.js';
import type { DeliveryView, ItemView, PipelineStatus } from '../../domain/item-view.js';
import type { PayloadCondition } from '../../domain/payload-filter.js';
import { insertTemplate } from '../../../shared/sql/insert-template.js';
import { mapYielding } from '../../../shared/yielding.js';
import { keyPieces, rowPieces } from '../../../shared/sql/statement-shapes.js';
import { KEY_LOCK_SPACES, lockKeys } from '../../../shared/sql/key-locks.js';
import { cursorAfter, listPositions, positionOfCursor } from '../../../shared/sql/list-positions.js';

type Row = {
  id: string;
  partner_id: string;
  event_type: string;
  status: string;
  /** json on PostgreSQL (read back parsed, its keys in the order written), text on SQLite. */
  payload: string | object | null;
  received_at: string;
  validation: string | null;
  processing: string | null;
  metadata: string | null;
  deliveries: string;
  updated_at: string;
  /** The list order: numbered as the view writes the row, so an item never appears behind a page already read. */
  seq: number | string;
};
type Tables = { query_items: Row };

const tables = (db: Kysely<object>) => db.withTables<Tables>();
const json = (value: unknown) => (value === null ? null : JSON.stringify(value));
const parse = <T>(text: string | object | null): T | null =>
  text === null ? null : ((typeof text === 'string' ? JSON.parse(text) : text) as T);
/** PostgreSQL's jsonb (the index's form of the payload) refuses the NUL character; the view shows U+FFFD where the log keeps the original. */
const payloadJson = (value: unknown) => {
  if (value === null) return null;
  const text = JSON.stringify(value);
  // JSON writes U+0000 only as `\u0000`: without that sequence there is nothing to replace, and a
  // replacer function (called for every key) is what made this stringify slow.
  return text.includes('\\u0000')
    ? JSON.stringify(value, (_key, v: unknown) => (typeof v === 'string' ? v.replaceAll('\u0000', '\ufffd') : v))
    : text;
};

/**
 * One payload condition as SQL. PostgreSQL: containment (`@>`), which the GIN index on the payload
 * serves; SQLite: `json_extract` on a quoted JSON path. Paths and values are bound parameters.
 */
function payloadCondition(postgres: boolean, condition: PayloadCondition): Expression<SqlBool> {
  if (postgres) {
    const documents = condition.values.map((value) =>
      JSON.stringify(condition.path.reduceRight<unknown>((inner, key) => ({ [key]: inner }), value)),
    );
    return sql<SqlBool>`(${sql.join(
      // The expression of the GIN index: the payload is stored as written (json), compared as jsonb.
      documents.map((document) => sql`payload::jsonb @> ${document}::jsonb`),
      sql` OR `,
    )})`;
  }
  // json_extract alone would answer 1 for true and an array's JSON text for an array, so the JSON
  // type is checked too: a value matches only a value of its own type, as containment does.
  const path = `$${condition.path.map((key) => `."${key}"`).join('')}`;
  const type = sql`json_type(payload, ${path})`;
  const extracted = sql`json_extract(payload, ${path})`;
  const matches = condition.values.map((value) => {
    if (value === null) return sql`${type} = 'null'`;
    if (typeof value === 'boolean') return sql`${type} = ${value ? 'true' : 'false'}`;
    // As a double, as JSON.parse reads it: SQLite keeps `1234567890123456800` an exact integer, which
    // equals no double, so no filter found it (PostgreSQL's jsonb compares the numbers as written).
    if (typeof value === 'number') return sql`(${type} IN ('integer', 'real') AND ${extracted} + 0.0 = ${value})`;
    return sql`(${type} = 'text' AND ${extracted} = ${value})`;
  });
  return sql<SqlBool>`(${sql.join(matches, sql` OR `)})`;
}

/** What a row's JSON columns weigh: SQLite answers from the record header, PostgreSQL writes the json out. */
function sizeOfRow(postgres: boolean) {
  const size = (column: keyof Row) =>
    postgres
      ? sql<number>`coalesce(octet_length(${sql.ref(column)}::text), 0)`
      : sql<number>`coalesce(octet_length(${sql.ref(column)}), 0)`;
  return sql<number>`${size('payload')} + ${size('validation')} + ${size('processing')} + ${size('metadata')} + ${size('deliveries')}`;
}

/**
 * Rows and bytes of payload a filtered page may look through: on SQLite json_extract holds the
 * thread, about 30 ms for this window (64 MB of 6.6 KB payloads under five conditions held it for
 * 140-220 ms); a time range checks about 8 ms of rows.
 */
const SCAN_ROWS = 10_000;
const SCAN_BYTES = 8 * 1024 * 1024;

/**
 * The id up to which a filtered page looks, or undefined when the rest of the table is within the
 * window. Sizes come from the record headers: nothing of the payloads is read.
 */
async function scanWindowEnd(query: SelectQueryBuilder<Tables, 'query_items', object>, postgres: boolean): Promise<number | undefined> {
  // PostgreSQL reads no payload to check a time range (its payload filters use the GIN index): rows only.
  const rows = await query
    .select(['seq', postgres ? sql<number>`0`.as('bytes') : sql<number>`coalesce(octet_length(payload), 0)`.as('bytes')])
    .orderBy('seq')
    .limit(SCAN_ROWS)
    .execute();
  let total = 0;
  for (const row of rows) {
    total += row.bytes;
    if (total >= SCAN_BYTES) return Number(row.seq);
  }
  const last = rows.at(-1);
  return rows.length === SCAN_ROWS && last ? Number(last.seq) : undefined;
}

const toRow = (view: ItemView, seq: number): Row => ({
  id: view.id,
  partner_id: view.partnerId,
  event_type: view.eventType,
  status: view.status,
  payload: payloadJson(view.payload),
  received_at: view.receivedAt,
  validation: json(view.validation),
  processing: json(view.processing),
  metadata: json(view.metadata),
  deliveries: JSON.stringify(view.deliveries),
  updated_at: view.updatedAt,
  seq,
});

const toView = (row: Row): ItemView => ({
  id: row.id,
  partnerId: row.partner_id,
  eventType: row.event_type,
  status: row.status as PipelineStatus,
  payload: parse(row.payload),
  receivedAt: row.received_at,
  validation: parse(row.validation),
  processing: parse(row.processing),
  metadata: parse(row.metadata),
  deliveries: JSON.parse(row.deliveries) as DeliveryView[],
  updatedAt: row.updated_at,
});

const COLUMNS = [
  'id',
  'partner_id',
  'event_type',
  'status',
  'payload',
  'received_at',
  'validation',
  'processing',
  'metadata',
  'deliveries',
  'updated_at',
  'seq',
] as const;

const upsertViews = insertTemplate<Row>(COLUMNS, (db, rows) =>
  tables(db)
    .insertInto('query_items')
    .values(rows)
    .onConflict((oc) =>
      oc.column('id').doUpdateSet((eb) => ({
        partner_id: eb.ref('excluded.partner_id'),
        event_type: eb.ref('excluded.event_type'),
        status: eb.ref('excluded.status'),
        payload: eb.ref('excluded.payload'),
        received_at: eb.ref('excluded.received_at'),
        validation: eb.ref('excluded.validation'),
        processing: eb.ref('excluded.processing'),
        metadata: eb.ref('excluded.metadata'),
        deliveries: eb.ref('excluded.deliveries'),
        updated_at: eb.ref('excluded.updated_at'),
        // A row keeps the place in the lists it took when it was first written.
      })),
    ),
);

export function sqlItemViews(db: Kysely<object>): ItemViews {
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  return {
    async get(id) {
      const row = await tables(db).selectFrom('query_items').selectAll().where('id', '=', id).executeTakeFirst();
      return row && toView(row);
    },

    lockForUpdate: (ids) => lockKeys(db, KEY_LOCK_SPACES.itemViews, ids),

    async getMany(ids) {
      const found = new Map<string, ItemView>();
      for (const piece of keyPieces(db, ids)) {
        const rows = await tables(db).selectFrom('query_items').selectAll().where('id', 'in', piece).execute();
        for (const row of rows) found.set(row.id, toView(row));
      }
      return found;
    },

    async list(filter, page, maxBytes = MAX_ITEM_PAGE_BYTES) {
      const after = page.cursor === undefined ? undefined : await positionOfCursor(db, 'query_items', page.cursor);
      const selected = ({ timed = true } = {}) => {
        let query = tables(db).selectFrom('query_items');
        if (filter.partnerId !== undefined) query = query.where('partner_id', '=', filter.partnerId);
        if (filter.status !== undefined) query = query.where('status', '=', filter.status);
        if (filter.eventType !== undefined) query = query.where('event_type', '=', filter.eventType);
        if (timed && filter.from !== undefined) query = query.where('received_at', '>=', filter.from);
        if (timed && filter.to !== undefined) query = query.where('received_at', '<', filter.to);
        if (after !== undefined) query = query.where('seq', '>', after);
        return query;
      };
      // What no index narrows is checked row by row: SQLite reads every payload a filter looks at,
      // on this thread, and `from`/`to` are checked on rows in list order (the last hour of a long
      // list lies behind all of it). One page looks through a window of the list at most, and answers
      // the end of the window as its cursor when it found fewer items than asked for.
      const payload = filter.payload ?? [];
      const timed = filter.from !== undefined || filter.to !== undefined;
      const windowEnd = timed || (!postgres && payload.length > 0) ? await scanWindowEnd(selected({ timed: false }), postgres) : undefined;
      let candidates = selected()
        .select(['id', 'seq', sizeOfRow(postgres).as('bytes')])
        .orderBy('seq')
        .limit(page.limit + 1);
      for (const condition of payload) candidates = candidates.where(payloadCondition(postgres, condition));
      if (windowEnd !== undefined) candidates = candidates.where('seq', '<=', windowEnd);
      const sized = await candidates.execute();
      const taken = rowsWithin(sized, page.limit, maxBytes);
      const byId = new Map<string, ItemView>();
      for (const piece of keyPieces(
        db,
        taken.map((row) => row.id),
      )) {
        const rows = await tables(db).selectFrom('query_items').selectAll().where('id', 'in', piece).execute();
        // Parsed a slice of the thread at a time: a page of items of thousands of keys each took 100 ms.
        for (const view of await mapYielding(rows, toView)) byId.set(view.id, view);
      }
      const items = taken.flatMap((row) => byId.get(row.id) ?? []);
      const last = taken.at(-1)?.seq;
      const more = sized.length > taken.length;
      const nextKey = more && last !== undefined ? Number(last) : windowEnd;
      return { items, nextCursor: nextKey === undefined ? null : cursorAfter(nextKey) };
    },

    async save(views) {
      // The rows take the next positions of the list order, in the order given (a new item's first
      // event comes in log order); a row already there keeps its own.
      const positions = await listPositions(db, 'query_items', views.length);
      const rows = views.map((view, i) => toRow(view, positions[i] ?? 0));
      for (const piece of rowPieces(db, rows)) await upsertViews(db, piece);
    },

    async clear() {
      await tables(db).deleteFrom('query_items').execute();
    },
  };
}
