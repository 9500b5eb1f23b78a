import { sql, type ColumnType, type Kysely, type Selectable } from 'kysely';
import pg from 'pg';
import type { Clock } from '../../clock.js';
import { NotFoundError } from '../../errors.js';
import type { EventMetadata, RecordedEvent } from '../../events.js';
import type { IdGenerator } from '../../ids.js';
import type { PostgresHandle } from '../../postgres/open-postgres.js';
import {
  ConcurrencyError,
  OverloadedError,
  type AppendRequest,
  type AppendResult,
  type EventStore,
  type InlineProjection,
  type StoreTransaction,
  readStreamsInChunks,
} from '../event-store.js';
import { groupCommitter } from '../group-commit.js';
import { isStorageFault, storageHealthTracker } from '../storage-fault.js';
import { workInFlight } from '../work-in-flight.js';
import { applyInlineProjections, planAppends, type PlannedRow } from '../plan-appends.js';
import { checkChannelName, listenForCommits } from './commit-notifications.js';
import { forgottenOnFailure, runCommitted, withSavepoint } from '../savepoint.js';
import { logLockKey } from '../../postgres/schema-lock.js';
import { keptEvent, RECENT_BYTES, RECENT_EVENTS, recentEvents, type KeptEvent } from '../recent-events.js';

export interface EventsTable {
  /** bigint: node-postgres hands it over as a string. */
  position: ColumnType<string, never, never>;
  event_id: string;
  stream_id: string;
  stream_version: number;
  type: string;
  data: ColumnType<object, string, never>;
  metadata: ColumnType<EventMetadata, string, never>;
  recorded_at: ColumnType<Date, string, never>;
  /** xid8, as a string. */
  transaction_id: ColumnType<string, never, never>;
}

interface Tables {
  events: EventsTable;
  event_read_order: { position_order_after: ColumnType<string, never, never> };
}

export interface PostgresEventStoreOptions {
  readonly postgres: PostgresHandle;
  readonly clock: Clock;
  readonly newId: IdGenerator;
  readonly inlineProjections?: readonly InlineProjection[];
  readonly maxBatch?: number;
  readonly maxQueued?: number;
  readonly onBatch?: (size: number) => void;
  /**
   * When set, every commit that appends sends NOTIFY on this channel and the store LISTENs on it, so
   * `onAppended` also fires for appends made by other processes sharing the schema.
   */
  readonly notifyChannel?: string;
  /** How many of the latest events to keep in memory for in-process readers (0: none). */
  readonly recentEvents?: number;
}

/** Readers of one store: the relay, each in-process subscription, a replay. */
const MAX_REMEMBERED_STOPS = 64;

/** Heads of own commits whose echo over LISTEN is still to come (one per insert in flight). */
const MAX_OWN_HEADS = 1024;

/** Attempts at one append whose stream another writer keeps taking versions of between our read and our insert. */
const MAX_CONFLICT_ATTEMPTS = 3;

const EVENT_COLUMNS = ['position', 'event_id', 'stream_id', 'stream_version', 'type', 'data', 'metadata', 'recorded_at'] as const;

/**
 * The EventStore port on PostgreSQL. Appends are group-committed like SQLite's; PostgreSQL's commit is
 * already durable, so there is no separate sync. Several processes may append to one schema: the
 * unique (stream_id, stream_version) constraint is the final guard against a lost update.
 *
 * Reading: a transaction takes the log's advisory lock (`logLockKey`) in the statement that inserts
 * its first events and holds it until it ends, so positions are taken, and commit, one transaction at
 * a time: whatever a reader sees is every committed event up to the highest position it sees, and it
 * reads on by position. Nothing outside the log holds a reader back (a transaction still open in
 * another schema or database used to, when readers stayed below the oldest running transaction).
 * Events appended before this order (migration 0002) are still read first, in their old
 * (transaction_id, position) order, which their checkpoints point into.
 *
 * Its own commits stay in memory for a while (`recentEvents`), as SQLite's do: the outbox relay and
 * in-process subscribers read them from there. Since positions commit in order, a stretch of own
 * events with no gap between them is all the log holds there; an append by another process, or a
 * rolled-back one, leaves a gap, and a read across it goes to the database.
 */
export async function postgresEventStore(options: PostgresEventStoreOptions): Promise<EventStore> {
  const db = options.postgres.db as Kysely<Tables>;
  const logKey = logLockKey(options.postgres.schema);
  /** The last position of the events appended before position order (0 when there were none). */
  const legacyEnd = Number(
    (await db.selectFrom('event_read_order').select('position_order_after').executeTakeFirst())?.position_order_after ?? 0,
  );
  const projections = options.inlineProjections ?? [];
  const listeners = new Set<(head: number) => void>();
  const channel = options.notifyChannel === undefined ? undefined : checkChannelName(options.notifyChannel);

  const recent = recentEvents<KeptEvent>({
    events: options.recentEvents ?? RECENT_EVENTS,
    bytes: RECENT_BYTES,
    sizeOf: (kept) => kept.size,
  });

  const wake = (head: number) => {
    for (const listener of listeners) listener(head);
  };
  /** After a commit, with what it appended in position order. */
  const notify = (events: readonly RecordedEvent[]) => {
    recent.add(events.map(keptEvent));
    const last = events.at(-1);
    if (last) wake(last.position);
  };
  /**
   * The heads this store's own inserts sent NOTIFY for. Its listeners are woken in-process after the
   * commit, so the echo of the same head over LISTEN is dropped: each wake costs every reader a read.
   * Noted before the commit, since the echo may overtake the commit's answer.
   */
  const ownHeads = new Set<number>();
  // Oldest first, by slot: dropping a Set's first entry again and again makes V8 walk its holes.
  const ownHeadSlots: number[] = [];
  let nextSlot = 0;
  const noteOwnHead = (head: number) => {
    const dropped = ownHeadSlots[nextSlot];
    if (dropped !== undefined) ownHeads.delete(dropped);
    ownHeadSlots[nextSlot] = head;
    nextSlot = (nextSlot + 1) % MAX_OWN_HEADS;
    ownHeads.add(head);
  };
  const heard = (head: number) => {
    if (!ownHeads.delete(head)) wake(head);
  };
  const stopListening = channel === undefined ? undefined : await listenForCommits(options.postgres.pool, channel, heard);

  async function appendWithin(trx: Kysely<Tables>, requests: readonly AppendRequest[]): Promise<Array<AppendResult | Error>> {
    // Only a numbered expected version needs the stream's version read first. A new stream
    // ('no_stream') starts at 1, and one taken by then collides on the unique version; any other
    // append is numbered by the INSERT itself, after what its stream holds.
    const lookup = requests.some((r) => typeof r.expectedVersion === 'number');
    const versions = lookup ? await currentVersions(trx, [...new Set(requests.map((r) => r.streamId))]) : new Map<string, number>();
    const plan = planAppends(requests, versions, options.newId);
    // By row: appends to one stream in one batch may differ.
    const shifted = plan.rows.map((row) => !lookup && requests[row.request]?.expectedVersion !== 'no_stream');
    const recordedAt = options.clock.now().toISOString();
    const inserted = await insertRows(trx, plan.rows, recordedAt, { channel, logKey }, shifted);
    if (channel !== undefined && inserted.size > 0) {
      let head = 0;
      for (const row of inserted.values()) head = Math.max(head, row.position);
      noteOwnHead(head);
    }
    const { results, recorded } = plan.complete(
      (row) => inserted.get(row.eventId.toLowerCase())?.position ?? 0,
      recordedAt,
      (row) => (inserted.get(row.eventId.toLowerCase())?.streamVersion ?? row.streamVersion) - row.streamVersion,
    );
    await applyInlineProjections(projections, trx, recorded, untyped);
    return results;
  }

  /**
   * One append in a savepoint, for when another writer raced us to a stream version: the retry reads the
   * stream's new version, so a stale expected version becomes a ConcurrencyError for this request alone.
   */
  async function appendIsolated(trx: Kysely<Tables>, request: AppendRequest): Promise<AppendResult | Error> {
    for (let attempt = 1; ; attempt++) {
      await sql`SAVEPOINT append_one`.execute(trx);
      try {
        const [outcome] = await appendWithin(trx, [request]);
        await sql`RELEASE SAVEPOINT append_one`.execute(trx);
        return outcome ?? new Error('append produced no result');
      } catch (error) {
        await sql`ROLLBACK TO SAVEPOINT append_one`.execute(trx);
        await sql`RELEASE SAVEPOINT append_one`.execute(trx);
        if (!isStreamVersionConflict(error)) throw error;
        // A version expected exactly was taken: trying again cannot help. Otherwise the retry
        // numbers the events after the stream's new version.
        const exact = request.expectedVersion !== undefined && request.expectedVersion !== 'any';
        if (exact || attempt >= MAX_CONFLICT_ATTEMPTS) {
          const actual = (await currentVersions(trx, [request.streamId])).get(request.streamId) ?? 0;
          return new ConcurrencyError(request.streamId, request.expectedVersion ?? 'any', actual);
        }
      }
    }
  }

  async function commitBatch(requests: readonly AppendRequest[]): Promise<Array<AppendResult | Error>> {
    const inTransaction = async (append: (trx: Kysely<Tables>) => Promise<Array<AppendResult | Error>>) => db.transaction().execute(append);
    try {
      return await inTransaction((trx) => appendWithin(trx, requests));
    } catch (error) {
      if (!isStreamVersionConflict(error)) throw error;
      // Another process appended to one of these streams meanwhile. Appending one by one, each in its
      // own savepoint, fails only the request that conflicts instead of the whole batch.
      return inTransaction(async (trx) => {
        const results: Array<AppendResult | Error> = [];
        for (const request of requests) results.push(await appendIsolated(trx, request));
        return results;
      });
    }
  }

  // Appends and transactions begun before close() end before the files and connections do.
  const inFlight = workInFlight();
  const maxQueued = options.maxQueued ?? 10_000;
  let transactionsRunning = 0;
  let closed: Promise<void> | undefined;
  // Appends that fail on the database itself (a table held locked past the lock timeout, a lost
  // connection) make readiness say writes fail, until one commits again: reads alone still succeeded.
  const tracker = storageHealthTracker(() => options.clock.now());
  const committer = groupCommitter<AppendRequest, AppendResult>({
    commit: async (requests) => {
      let results: Array<AppendResult | Error>;
      try {
        results = await commitBatch(requests);
      } catch (error) {
        if (isStorageFault(error)) tracker.failed(error);
        throw error;
      }
      tracker.succeeded();
      notify(appendedEvents(results));
      return results;
    },
    // A PostgreSQL commit returns once its WAL record is flushed: nothing more to wait for.
    durable: () => Promise.resolve(),
    maxBatch: options.maxBatch ?? 1000,
    maxQueued,
    overloaded: (queued) => new OverloadedError(queued),
    onBatch: options.onBatch,
    // The database failing is no request's doing: tried alone, each would wait out the same lock timeout in turn.
    retryAlone: (error) => !isStorageFault(error),
  });

  /**
   * The transaction ids of the events appended before position order that readers last stopped at: a
   * reader continues after the last event it read, so its next read needs no lookup.
   */
  const stops = new Map<number, string>();
  const rememberStop = (position: number, transactionId: string) => {
    stops.set(position, transactionId);
    if (stops.size > MAX_REMEMBERED_STOPS) stops.delete(stops.keys().next().value as number);
  };

  /** The transaction id of an event from before position order: with its position, its place in the read order. */
  async function readOrderOf(position: number): Promise<string> {
    const known = stops.get(position);
    if (known !== undefined) return known;
    const row = await db.selectFrom('events').select('transaction_id').where('position', '=', String(position)).executeTakeFirst();
    if (!row) {
      throw new NotFoundError(
        'event-store.unknown-position',
        `no event at position ${position}: readAll continues after 0 or the position of an event read from this store`,
      );
    }
    return row.transaction_id;
  }

  /** Events from before position order after `after` (0 or one of them), in their old order. */
  async function readLegacy(after: number, limit: number): Promise<RecordedEvent[]> {
    let query = db
      .selectFrom('events')
      .select([...EVENT_COLUMNS, 'transaction_id'])
      .where('position', '<=', String(legacyEnd));
    if (after > 0) {
      const transactionId = await readOrderOf(after);
      query = query.where(sql<boolean>`(transaction_id, position) > (${transactionId}::xid8, ${after}::bigint)`);
    }
    const rows = await query.orderBy('transaction_id').orderBy('position').limit(limit).execute();
    const last = rows.at(-1);
    if (last) rememberStop(Number(last.position), last.transaction_id);
    return rows.map(toRecorded);
  }

  async function readInOrder(after: number, limit: number): Promise<RecordedEvent[]> {
    const rows = await db
      .selectFrom('events')
      .select(EVENT_COLUMNS)
      .where('position', '>', String(Math.max(after, legacyEnd)))
      .orderBy('position')
      .limit(limit)
      .execute();
    return rows.map(toRecorded);
  }

  /** The last event in read order: every committed event is readable. */
  async function lastInReadOrder(): Promise<number> {
    const newest = await db
      .selectFrom('events')
      .select((eb) => eb.fn.max('position').as('position'))
      .executeTakeFirst();
    const position = Number(newest?.position ?? 0);
    if (position > legacyEnd || legacyEnd === 0) return position;
    // Only events from before position order: the last of their old order (their index covers only them).
    const row = await db
      .selectFrom('events')
      .select('position')
      .where('position', '<=', String(legacyEnd))
      .orderBy('transaction_id', 'desc')
      .orderBy('position', 'desc')
      .limit(1)
      .executeTakeFirst();
    return Number(row?.position ?? 0);
  }

  return {
    append: (request) => inFlight.run(() => committer.submit(request)),

    async readStream(streamId) {
      const rows = await db
        .selectFrom('events')
        .select(EVENT_COLUMNS)
        .where('stream_id', '=', streamId)
        .orderBy('stream_version')
        .execute();
      return rows.map(toRecorded);
    },

    readStreams: (streamIds) =>
      readStreamsInChunks(streamIds, async (chunk) => {
        const rows = await db
          .selectFrom('events')
          .select(EVENT_COLUMNS)
          .where('stream_id', 'in', chunk)
          .orderBy('stream_id')
          .orderBy('stream_version')
          .execute();
        return rows.map(toRecorded);
      }),

    async readAll({ after, limit, reader }) {
      if (legacyEnd === 0 || after > legacyEnd) {
        const cached = recent.after(after, limit, reader);
        return cached ? cached.map((kept) => kept.event) : readInOrder(after, limit);
      }
      const legacy = await readLegacy(after, limit);
      return legacy.length === limit ? legacy : [...legacy, ...(await readInOrder(legacyEnd, limit - legacy.length))];
    },

    headPosition: lastInReadOrder,
    health: () => tracker.health,

    transaction: (work) => {
      // Transactions wait for a pooled connection, not for the committer: MAX_QUEUED_APPENDS bounds them too.
      if (transactionsRunning >= maxQueued) return Promise.reject(new OverloadedError(transactionsRunning));
      transactionsRunning += 1;
      return inFlight
        .run(async () => {
          const appended: RecordedEvent[] = [];
          const committed: Array<() => void> = [];
          const result = await db.transaction().execute(async (trx) => {
            const tx: StoreTransaction = {
              db: untyped(trx),
              async append(request) {
                const outcome = await appendIsolated(trx, request);
                if (outcome instanceof Error) throw outcome;
                appended.push(...outcome.events);
                return outcome;
              },
              async appendMany(requests) {
                // One statement for them all, and no savepoint around it: a version another writer took
                // meanwhile fails the statement and with it the transaction, which the caller retries
                // (a subscription tries the events again, each alone). Savepoints cost two round trips
                // on every commit for a race that a unique index already settles.
                let outcomes: Array<AppendResult | Error>;
                try {
                  outcomes = await appendWithin(trx, requests);
                } catch (error) {
                  throw isStreamVersionConflict(error) ? conflictOf(error, requests) : error;
                }
                // What was inserted is in the transaction even when another request of these failed its check.
                for (const outcome of outcomes) if (!(outcome instanceof Error)) appended.push(...outcome.events);
                const failure = outcomes.find((outcome) => outcome instanceof Error);
                if (failure) throw failure;
                return outcomes as AppendResult[];
              },
              // Rolled back, its appends are neither announced nor noted.
              isolated: (isolatedWork) => forgottenOnFailure([appended, committed], () => withSavepoint(untyped(trx), isolatedWork)),
              afterCommit: (callback) => committed.push(callback),
            };
            return work(tx);
          });
          notify(appended);
          runCommitted(committed);
          return result;
        })
        .finally(() => {
          transactionsRunning -= 1;
        });
    },

    onAppended(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    close: () =>
      (closed ??= (async () => {
        await inFlight.close();
        await stopListening?.();
      })()),
  };
}

/**
 * One statement for the whole batch: seven array parameters whatever its size, where a multi-row
 * VALUES would need seven parameters per row (and PostgreSQL allows 65535). With a channel, the same
 * statement sends NOTIFY with the newest position: PostgreSQL delivers it when, and only if, the
 * transaction commits (and drops it with a savepoint rolled back), one round trip fewer per commit.
 */
async function insertRows(
  trx: Kysely<Tables>,
  rows: readonly PlannedRow[],
  recordedAt: string,
  { channel, logKey }: { channel: string | undefined; logKey: string },
  shifted: readonly boolean[],
): Promise<Map<string, { position: number; streamVersion: number }>> {
  const placed = new Map<string, { position: number; streamVersion: number }>();
  if (rows.length === 0) return placed;
  // A shifted row was planned from 0: it goes after what its stream held when the statement began
  // (a racing writer's rows then collide with ours on the unique version, as they did with a version
  // read before).
  const version = shifted.some(Boolean)
    ? sql`r.stream_version + CASE WHEN r.shifted
        THEN COALESCE((SELECT max(e.stream_version) FROM events e WHERE e.stream_id = r.stream_id), 0) ELSE 0 END`
    : sql`r.stream_version`;
  const announced =
    channel === undefined ? sql`` : sql`CROSS JOIN (SELECT pg_notify(${channel}, max(position)::text) FROM inserted) AS announced`;
  // The log's lock comes first (a one-time filter, before any row or version is read): positions are
  // taken only by the transaction holding it, which keeps it until it ends.
  const inserted = await sql<{ position: string; event_id: string; stream_version: number }>`
    WITH ordered AS MATERIALIZED (SELECT pg_advisory_xact_lock(${logKey}::bigint)),
    inserted AS (
    INSERT INTO events (event_id, stream_id, stream_version, type, data, metadata, recorded_at)
    SELECT r.event_id, r.stream_id, ${version}, r.type, r.data, r.metadata, ${recordedAt}::timestamptz
    FROM unnest(
      ${rows.map((r) => r.eventId)}::uuid[],
      ${rows.map((r) => r.streamId)}::text[],
      ${rows.map((r) => r.streamVersion)}::integer[],
      ${rows.map((r) => r.type)}::text[],
      ${rows.map((r) => r.data)}::json[],
      ${rows.map((r) => r.metadata)}::json[],
      ${shifted}::boolean[]
    ) WITH ORDINALITY AS r(event_id, stream_id, stream_version, type, data, metadata, shifted, n)
    WHERE EXISTS (SELECT FROM ordered)
    -- Positions follow the order of the batch, so a stream's versions get increasing positions.
    ORDER BY r.n
    RETURNING position, event_id, stream_version)
    SELECT inserted.position, inserted.event_id, inserted.stream_version FROM inserted ${announced}`.execute(trx);
  // By event id, as PostgreSQL spells a uuid.
  for (const row of inserted.rows) placed.set(row.event_id, { position: Number(row.position), streamVersion: row.stream_version });
  return placed;
}

async function currentVersions(db: Kysely<Tables>, streamIds: readonly string[]): Promise<Map<string, number>> {
  const versions = new Map<string, number>();
  if (streamIds.length === 0) return versions;
  const rows = await db
    .selectFrom('events')
    .select(['stream_id', (eb) => eb.fn.max('stream_version').as('version')])
    .where(sql<boolean>`stream_id = any(${streamIds}::text[])`)
    .groupBy('stream_id')
    .execute();
  for (const row of rows) versions.set(row.stream_id, Number(row.version));
  return versions;
}

/** The append a unique-version violation was about, as the error callers expect of a lost race. */
function conflictOf(error: pg.DatabaseError, requests: readonly AppendRequest[]): ConcurrencyError {
  // "Key (stream_id, stream_version)=(<stream>, <version>) already exists."
  const detail = error.detail ?? '';
  const request = requests.find((r) => detail.includes(`=(${r.streamId}, `)) ?? requests[0];
  const taken = request ? Number.parseInt(detail.slice(detail.indexOf(`=(${request.streamId}, `) + request.streamId.length + 4), 10) : 0;
  const concurrency = new ConcurrencyError(request?.streamId ?? '', request?.expectedVersion ?? 'any', Number.isNaN(taken) ? 0 : taken);
  return Object.assign(concurrency, { cause: error });
}

function isStreamVersionConflict(error: unknown): error is pg.DatabaseError {
  return error instanceof pg.DatabaseError && error.code === '23505' && error.constraint === 'events_stream_version';
}

function appendedEvents(results: ReadonlyArray<AppendResult | Error>): RecordedEvent[] {
  return results.flatMap((r) => (r instanceof Error ? [] : r.events));
}

/** Contexts type their own tables; they see the shared connection without the event store's types. */
function untyped(db: Kysely<Tables>): Kysely<object> {
  return db as unknown as Kysely<object>;
}

function toRecorded(row: Pick<Selectable<EventsTable>, (typeof EVENT_COLUMNS)[number]>): RecordedEvent {
  return {
    eventId: row.event_id,
    position: Number(row.position),
    streamId: row.stream_id,
    streamVersion: row.stream_version,
    type: row.type,
    data: row.data,
    metadata: row.metadata,
    recordedAt: row.recorded_at.toISOString(),
  };
}
