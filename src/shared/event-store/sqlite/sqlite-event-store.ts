import { open, type FileHandle } from 'node:fs/promises';
import type { Generated, Kysely, Selectable } from 'kysely';
import type { Clock } from '../../clock.js';
import type { IdGenerator } from '../../ids.js';
import type { EventMetadata, RecordedEvent } from '../../events.js';
import type { SqliteHandle } from '../../sqlite/open-sqlite.js';
import {
  checkExpectedVersion,
  OverloadedError,
  type AppendRequest,
  type AppendResult,
  type EventStore,
  type InlineProjection,
  type StoreTransaction,
} from '../event-store.js';
import { coalescedSync, groupCommitter } from '../group-commit.js';

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
}

// SQLite allows 32766 bound parameters; 8 columns per row keeps a chunk well below it.
const INSERT_CHUNK = 1000;

export async function sqliteEventStore(options: SqliteEventStoreOptions): Promise<EventStore> {
  const db = options.sqlite.db as Kysely<Tables>;
  const projections = options.inlineProjections ?? [];
  const listeners = new Set<(head: number) => void>();

  const wal: FileHandle | undefined =
    options.durability !== 'process-crash' && options.sqlite.walPath ? await openWal(options.sqlite) : undefined;
  const durable = wal ? coalescedSync(() => wal.datasync()) : () => Promise.resolve();

  const notify = (events: readonly RecordedEvent[]) => {
    const last = events.at(-1);
    if (!last) return;
    for (const listener of listeners) listener(last.position);
  };

  async function appendWithin(trx: Kysely<Tables>, requests: readonly AppendRequest[]): Promise<Array<AppendResult | Error>> {
    const versions = await currentVersions(trx, [...new Set(requests.map((r) => r.streamId))]);
    const recordedAt = options.clock.now().toISOString();
    const rows: Array<Omit<EventsTable, 'position'>> = [];
    const planned = requests.map((request) => {
      const current = versions.get(request.streamId) ?? 0;
      try {
        checkExpectedVersion(request.streamId, request.expectedVersion, current);
      } catch (error) {
        return error as Error;
      }
      const first = rows.length;
      request.events.forEach((event, i) => {
        rows.push({
          event_id: options.newId(),
          stream_id: request.streamId,
          stream_version: current + i + 1,
          type: event.type,
          data: JSON.stringify(event.data),
          metadata: JSON.stringify(event.metadata ?? {}),
          recorded_at: recordedAt,
        });
      });
      versions.set(request.streamId, current + request.events.length);
      return { first, count: request.events.length, streamId: request.streamId };
    });

    const positions = new Map<string, number>();
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      const inserted = await trx
        .insertInto('events')
        .values(rows.slice(i, i + INSERT_CHUNK))
        .returning(['position', 'event_id'])
        .execute();
      for (const row of inserted) positions.set(row.event_id, row.position);
    }

    const all: RecordedEvent[] = [];
    const results = planned.map((plan, index): AppendResult | Error => {
      if (plan instanceof Error) return plan;
      const request = requests[index] as AppendRequest;
      const events = rows.slice(plan.first, plan.first + plan.count).map((row, i) => {
        const recorded: RecordedEvent = {
          eventId: row.event_id,
          position: positions.get(row.event_id) ?? 0,
          streamId: row.stream_id,
          streamVersion: row.stream_version,
          type: row.type,
          data: request.events[i]?.data ?? {},
          metadata: request.events[i]?.metadata ?? {},
          recordedAt: row.recorded_at,
        };
        all.push(recorded);
        return recorded;
      });
      return { streamId: plan.streamId, nextExpectedVersion: versions.get(plan.streamId) ?? 0, events };
    });

    for (const projection of projections) {
      const handled = all.filter((event) => projection.handles.includes(event.type));
      if (handled.length > 0) await projection.apply(untyped(trx), handled);
    }
    return results;
  }

  const committer = groupCommitter<AppendRequest, AppendResult>({
    commit: async (requests) => {
      const results = await db.transaction().execute((trx) => appendWithin(trx, requests));
      notify(results.flatMap((r) => (r instanceof Error ? [] : r.events)));
      return results;
    },
    durable,
    maxBatch: options.maxBatch ?? 1000,
    maxQueued: options.maxQueued ?? 10_000,
    overloaded: (queued) => new OverloadedError(queued),
    onBatch: options.onBatch,
  });

  return {
    append: (request) => committer.submit(request),

    async readStream(streamId) {
      const rows = await db.selectFrom('events').selectAll().where('stream_id', '=', streamId).orderBy('stream_version').execute();
      return rows.map(toRecorded);
    },

    async readAll({ after, limit }) {
      const rows = await db.selectFrom('events').selectAll().where('position', '>', after).orderBy('position').limit(limit).execute();
      return rows.map(toRecorded);
    },

    async headPosition() {
      const row = await db
        .selectFrom('events')
        .select((eb) => eb.fn.max('position').as('head'))
        .executeTakeFirst();
      return Number(row?.head ?? 0);
    },

    async transaction(work) {
      const appended: RecordedEvent[] = [];
      const result = await db.transaction().execute((trx) => {
        const appendAll = async (requests: readonly AppendRequest[]) => {
          const outcomes = await appendWithin(trx, requests);
          const failure = outcomes.find((o) => o instanceof Error);
          if (failure) throw failure;
          const results = outcomes as AppendResult[];
          for (const result of results) appended.push(...result.events);
          return results;
        };
        const tx: StoreTransaction = {
          db: untyped(trx),
          async append(request) {
            const [result] = await appendAll([request]);
            if (!result) throw new Error('append produced no result');
            return result;
          },
          appendMany: appendAll,
        };
        return work(tx);
      });
      if (appended.length > 0) {
        notify(appended);
        await durable();
      }
      return result;
    },

    onAppended(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    async close() {
      await committer.drain();
      await wal?.close();
    },
  };
}

/** Contexts type their own tables; they see the shared connection without the event store's types. */
function untyped(db: Kysely<Tables>): Kysely<object> {
  return db as unknown as Kysely<object>;
}

async function currentVersions(db: Kysely<Tables>, streamIds: readonly string[]): Promise<Map<string, number>> {
  const versions = new Map<string, number>();
  for (let i = 0; i < streamIds.length; i += INSERT_CHUNK) {
    const rows = await db
      .selectFrom('events')
      .select(['stream_id', (eb) => eb.fn.max('stream_version').as('version')])
      .where('stream_id', 'in', streamIds.slice(i, i + INSERT_CHUNK))
      .groupBy('stream_id')
      .execute();
    for (const row of rows) versions.set(row.stream_id, Number(row.version));
  }
  return versions;
}

async function openWal(sqlite: SqliteHandle): Promise<FileHandle> {
  // The WAL file appears with the first write; make sure it exists before holding a handle to it.
  sqlite.raw.pragma('user_version = ' + Number(sqlite.raw.pragma('user_version', { simple: true })));
  return open(sqlite.walPath as string, 'r');
}

/**
 * Data and metadata are parsed on first use: every subscriber reads the whole log and skips the
 * event types it does not handle, so most events are never looked into.
 */
function toRecorded(row: Selectable<EventsTable>): RecordedEvent {
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
  };
}
