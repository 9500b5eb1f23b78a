import { open, type FileHandle } from 'node:fs/promises';
import type Database from 'better-sqlite3';
import type { Generated, Kysely, Selectable } from 'kysely';
import type { Clock } from '../../clock.js';
import type { IdGenerator } from '../../ids.js';
import type { EventMetadata, RecordedEvent } from '../../events.js';
import type { SqliteHandle } from '../../sqlite/open-sqlite.js';
import {
  OverloadedError,
  type AppendRequest,
  type AppendResult,
  type EventStore,
  type InlineProjection,
  type StoreTransaction,
  readStreamsInChunks,
} from '../event-store.js';
import { coalescedSync, groupCommitter } from '../group-commit.js';
import { isStorageFault, storageHealthTracker, storageUnavailable } from '../storage-fault.js';
import { applyInlineProjections, planAppends, type PlannedRow } from '../plan-appends.js';
import { keptEvent, RECENT_BYTES, RECENT_EVENTS, recentEvents, type KeptEvent } from '../recent-events.js';
import { workInFlight } from '../work-in-flight.js';
import { DATA_TEXT } from '../serialized-event.js';
import { forgottenOnFailure, runCommitted, withSavepoint } from '../savepoint.js';

export interface EventsTable {
  position: Generated<number>;
  event_id: string;
  stream_id: string;
  stream_version: number;
  type: string;
  data: string;
  metadata: string;
  recorded_at: string;
}

interface Tables {
  events: EventsTable;
}

/** `power-loss`: acknowledged appends survive power loss. `process-crash`: they survive a killed process only. */
export type Durability = 'power-loss' | 'process-crash';

export interface SqliteEventStoreOptions {
  readonly sqlite: SqliteHandle;
  readonly clock: Clock;
  readonly newId: IdGenerator;
  readonly durability?: Durability;
  readonly inlineProjections?: readonly InlineProjection[];
  readonly maxBatch?: number;
  readonly maxQueued?: number;
  readonly onBatch?: (size: number) => void;
  /** How many of the latest events to keep in memory for in-process readers (0: none). */
  readonly recentEvents?: number;
  /** The most JSON text one `readAll` returns (beyond its first event), in UTF-16 code units. */
  readonly readBudget?: number;
}

export async function sqliteEventStore(options: SqliteEventStoreOptions): Promise<EventStore> {
  const db = options.sqlite.db as Kysely<Tables>;
  const projections = options.inlineProjections ?? [];
  const listeners = new Set<(head: number) => void>();
  const recent = recentEvents<KeptEvent>({
    events: options.recentEvents ?? RECENT_EVENTS,
    bytes: RECENT_BYTES,
    sizeOf: (kept) => kept.size,
  });
  // Prepared on the first append: a store may be opened before its migrations ran, or read-only.
  let prepared: ReturnType<typeof appendStatements> | undefined;
  let reading: Database.Statement<[number, number], EventRow> | undefined;

  const wal: FileHandle | undefined =
    options.durability !== 'process-crash' && options.sqlite.walPath ? await openWal(options.sqlite) : undefined;
  const tracker = storageHealthTracker(() => options.clock.now());
  // A storage fault is recorded for readiness and reaches callers as "retry later", with SQLite's own words.
  const guarded = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      const result = await work();
      tracker.succeeded();
      return result;
    } catch (error) {
      if (!isStorageFault(error)) throw error;
      tracker.failed(error);
      throw storageUnavailable(error);
    }
  };
  const sync = wal ? coalescedSync(() => wal.datasync()) : () => Promise.resolve();
  // Commits that appended, and how many of them a finished sync covers.
  let appendCommits = 0;
  let syncedCommits = 0;
  const durable = async () => {
    const upTo = appendCommits;
    await guarded(sync);
    syncedCommits = Math.max(syncedCommits, upTo);
  };
  const durableSoFar = () => (syncedCommits >= appendCommits ? Promise.resolve() : durable());

  const notify = (committed: readonly KeptEvent[]) => {
    recent.add(committed);
    const last = committed.at(-1);
    if (!last) return;
    for (const listener of listeners) listener(last.position);
  };

  /**
   * Appends within `trx`; the events it inserted join `inserted`, to be noted once the transaction
   * commits. They are the appended events themselves, so readers of the tail share whatever parsing
   * the inline projections did.
   */
  async function appendWithin(
    trx: Kysely<Tables>,
    requests: readonly AppendRequest[],
    inserted: KeptEvent[],
  ): Promise<Array<AppendResult | Error>> {
    const statements = (prepared ??= appendStatements(options.sqlite.raw));
    const plan = planAppends(requests, statements.currentVersions([...new Set(requests.map((r) => r.streamId))]), options.newId);
    const recordedAt = options.clock.now().toISOString();
    const positions = new Map<PlannedRow, number>();
    for (const row of plan.rows) positions.set(row, statements.insert(row, recordedAt));
    const { results, recorded } = plan.complete((row) => positions.get(row) ?? 0, recordedAt);
    inserted.push(...recorded.map(keptEvent));
    await applyInlineProjections(projections, trx, recorded, untyped);
    return results;
  }

  // Appends and transactions begun before close() end before the files and connections do.
  const inFlight = workInFlight();
  let closed: Promise<void> | undefined;
  const committer = groupCommitter<AppendRequest, AppendResult>({
    commit: async (requests) => {
      const inserted: KeptEvent[] = [];
      const results = await guarded(() => db.transaction().execute((trx) => appendWithin(trx, requests, inserted)));
      if (inserted.length > 0) appendCommits += 1;
      notify(inserted);
      return results;
    },
    durable,
    maxBatch: options.maxBatch ?? 1000,
    maxQueued: options.maxQueued ?? 10_000,
    overloaded: (queued) => new OverloadedError(queued),
    onBatch: options.onBatch,
    retryAlone: (error) => !isStorageFault(error),
  });

  const head = async () => {
    const row = await db
      .selectFrom('events')
      .select((eb) => eb.fn.max('position').as('head'))
      .executeTakeFirst();
    return Number(row?.head ?? 0);
  };

  return {
    append: (request) => inFlight.run(() => committer.submit(request)),

    async readStream(streamId) {
      const rows = await db.selectFrom('events').selectAll().where('stream_id', '=', streamId).orderBy('stream_version').execute();
      return rows.map(toRecorded);
    },

    readStreams: (streamIds) =>
      readStreamsInChunks(streamIds, async (chunk) => {
        const rows = await db
          .selectFrom('events')
          .selectAll()
          .where('stream_id', 'in', chunk)
          .orderBy('stream_id')
          .orderBy('stream_version')
          .execute();
        return rows.map(toRecorded);
      }),

    async readAll({ after, limit, reader }) {
      const cached = recent.after(after, limit, reader);
      if (cached) return cached.map((kept) => kept.event);
      const statement = (reading ??= options.sqlite.raw.prepare('SELECT * FROM events WHERE position > ? ORDER BY position LIMIT ?'));
      // Through Kysely's hold on the connection: a statement run beside it could land inside an
      // open transaction and read rows that are not committed yet.
      const rows = await db.connection().execute(async () => readBounded(statement, after, limit, options.readBudget ?? READ_BUDGET));
      return rows.map(toRecorded);
    },

    headPosition: head,
    // One writer, committing in position order: every committed event is readable.

    transaction: (work) =>
      inFlight.run(async () => {
        const appended: KeptEvent[] = [];
        const committed: Array<() => void> = [];
        const result = await guarded(() =>
          db.transaction().execute((trx) => {
            const appendAll = async (requests: readonly AppendRequest[]) => {
              const outcomes = await appendWithin(trx, requests, appended);
              const failure = outcomes.find((o) => o instanceof Error);
              if (failure) throw failure;
              return outcomes as AppendResult[];
            };
            const tx: StoreTransaction = {
              db: untyped(trx),
              async append(request) {
                const [result] = await appendAll([request]);
                if (!result) throw new Error('append produced no result');
                return result;
              },
              appendMany: appendAll,
              // Rolled back, its appends are never noted as committed.
              isolated: (isolatedWork) => forgottenOnFailure([appended, committed], () => withSavepoint(untyped(trx), isolatedWork)),
              afterCommit: (callback) => committed.push(callback),
            };
            return work(tx);
          }),
        );
        if (appended.length > 0) {
          appendCommits += 1;
          notify(appended);
          await durable();
        }
        runCommitted(committed);
        return result;
      }),

    health: () => tracker.health,

    durable: durableSoFar,

    onAppended(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    close: () =>
      (closed ??= (async () => {
        await inFlight.close();
        await wal?.close();
      })()),
  };
}

/** Contexts type their own tables; they see the shared connection without the event store's types. */
function untyped(db: Kysely<Tables>): Kysely<object> {
  return db as unknown as Kysely<object>;
}

// A read returns fewer events rather than more than this much JSON text (UTF-16 code units): a
// subscriber far behind a log of large payloads reads it in bounded pieces.
const READ_BUDGET = 32 * 1024 * 1024;

/** Up to `limit` events after `position`, and never more than the budget of text but at least one. */
function readBounded(
  statement: Database.Statement<[number, number], EventRow>,
  position: number,
  limit: number,
  budget: number,
): EventRow[] {
  const rows: EventRow[] = [];
  let text = 0;
  // Rows come from SQLite one at a time: leaving the loop early reads no further.
  for (const row of statement.iterate(position, limit)) {
    text += row.data.length + row.metadata.length;
    if (rows.length > 0 && text > budget) break;
    rows.push(row);
  }
  return rows;
}

/**
 * The append's two statements, prepared once and run on the connection's open transaction.
 * Straight better-sqlite3 rather than Kysely: they run for every event, and building a
 * multi-row INSERT per batch cost more than the row-by-row inserts do.
 */
function appendStatements(raw: Database.Database) {
  const insert = raw.prepare(
    'INSERT INTO events (event_id, stream_id, stream_version, type, data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  // One statement for any number of streams: the ids arrive as one JSON array.
  const versions = raw.prepare<[string], { stream_id: string; version: number }>(
    'SELECT stream_id, max(stream_version) AS version FROM events WHERE stream_id IN (SELECT value FROM json_each(?)) GROUP BY stream_id',
  );
  return {
    insert(row: PlannedRow, recordedAt: string): number {
      const { lastInsertRowid } = insert.run(row.eventId, row.streamId, row.streamVersion, row.type, row.data, row.metadata, recordedAt);
      return Number(lastInsertRowid);
    },
    currentVersions(streamIds: readonly string[]): Map<string, number> {
      return new Map(versions.all(JSON.stringify(streamIds)).map((row) => [row.stream_id, Number(row.version)]));
    },
  };
}

async function openWal(sqlite: SqliteHandle): Promise<FileHandle> {
  // The WAL file appears with the first write; make sure it exists before holding a handle to it.
  sqlite.raw.pragma('user_version = ' + Number(sqlite.raw.pragma('user_version', { simple: true })));
  return open(sqlite.walPath as string, 'r');
}

type EventRow = Selectable<EventsTable>;

/**
 * Data and metadata are parsed on first use: every subscriber reads the whole log and skips the
 * event types it does not handle, so most events are never looked into.
 */
function toRecorded(row: EventRow): RecordedEvent {
  let data: object | undefined;
  let metadata: EventMetadata | undefined;
  return {
    eventId: row.event_id,
    position: row.position,
    streamId: row.stream_id,
    streamVersion: row.stream_version,
    type: row.type,
    get data() {
      return (data ??= JSON.parse(row.data) as object);
    },
    get metadata() {
      return (metadata ??= JSON.parse(row.metadata) as EventMetadata);
    },
    recordedAt: row.recorded_at,
    [DATA_TEXT]: row.data,
  } as RecordedEvent;
}
