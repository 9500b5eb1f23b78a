import { sql, type Kysely } from 'kysely';
import { ConflictError, messageOf } from '../errors.js';
import type { StoreTransaction } from '../event-store/event-store.js';
import type { RecordedEvent } from '../events.js';
import { decodeKeyParts, pageOf, type Page, type PageRequest } from '../pagination.js';

type Tables = {
  subscription_checkpoints: {
    subscriber: string;
    position: number;
    updated_at: string;
    /** While a replay rebuilds the subscriber's view: the head when it began. Cleared once read that far. */
    replaying_until: number | null;
  };
  parked_events: {
    subscriber: string;
    position: number;
    event_id: string;
    event_type: string;
    stream_id: string;
    /** The whole event as JSON; null for entries parked before it was kept. */
    event: string | null;
    error: string;
    attempts: number;
    parked_at: string;
  };
  replay_requests: { subscriber: string; reason: string };
};

export interface ParkedEvent {
  readonly subscriber: string;
  readonly position: number;
  readonly eventId: string;
  readonly eventType: string;
  readonly streamId: string;
  /** The event itself, when it was kept: what a bus consumer retries. */
  readonly event: RecordedEvent | undefined;
  readonly error: string;
  readonly attempts: number;
  readonly parkedAt: string;
}

const tables = (db: Kysely<object>) => db.withTables<Tables>();

export async function loadCheckpoint(db: Kysely<object>, subscriber: string): Promise<number> {
  const row = await tables(db)
    .selectFrom('subscription_checkpoints')
    .select('position')
    .where('subscriber', '=', subscriber)
    .executeTakeFirst();
  return Number(row?.position ?? 0);
}

export async function saveCheckpoint(db: Kysely<object>, subscriber: string, position: number, at: string): Promise<void> {
  // A replay is over once the subscriber has read as far as the head when it began: cleared in the
  // same write, so that a restart never reports a rebuild that was finished, nor forgets one that was not.
  const replayingUntil = sql<number | null>`CASE WHEN subscription_checkpoints.replaying_until <= ${position} THEN NULL
    ELSE subscription_checkpoints.replaying_until END`;
  await tables(db)
    .insertInto('subscription_checkpoints')
    .values({ subscriber, position, updated_at: at })
    .onConflict((oc) => oc.column('subscriber').doUpdateSet({ position, updated_at: at, replaying_until: replayingUntil }))
    .execute();
}

/** Sends the subscriber back to the start of the log to rebuild its view up to `until`, the head now. */
export async function startReplayCheckpoint(db: Kysely<object>, subscriber: string, until: number, at: string): Promise<void> {
  const replaying_until = until > 0 ? until : null;
  await tables(db)
    .insertInto('subscription_checkpoints')
    .values({ subscriber, position: 0, updated_at: at, replaying_until })
    .onConflict((oc) => oc.column('subscriber').doUpdateSet({ position: 0, updated_at: at, replaying_until }))
    .execute();
}

/** Forgets a subscriber's replay once over, where its progress is counted elsewhere (the broker's consumer). */
export async function endReplay(db: Kysely<object>, subscriber: string): Promise<void> {
  await tables(db).updateTable('subscription_checkpoints').set({ replaying_until: null }).where('subscriber', '=', subscriber).execute();
}

/** The replays under way, by subscriber: the head each one rebuilds its view up to. */
export async function replaysUnderWay(db: Kysely<object>): Promise<Map<string, number>> {
  const rows = await tables(db)
    .selectFrom('subscription_checkpoints')
    .select(['subscriber', 'replaying_until'])
    .where('replaying_until', 'is not', null)
    .execute();
  return new Map(rows.map((row) => [row.subscriber, Number(row.replaying_until)]));
}

/** Checkpoints whose names start with the prefix, by name: how a chain records its members. */
export async function loadCheckpointsNamed(db: Kysely<object>, prefix: string): Promise<Map<string, number>> {
  // A few dozen rows at most (one per subscriber and chain member): filtered here, with no LIKE to escape.
  const rows = await tables(db).selectFrom('subscription_checkpoints').select(['subscriber', 'position']).execute();
  return new Map(rows.filter((row) => row.subscriber.startsWith(prefix)).map((row) => [row.subscriber, Number(row.position)]));
}

export async function deleteCheckpoint(db: Kysely<object>, subscriber: string): Promise<void> {
  await tables(db).deleteFrom('subscription_checkpoints').where('subscriber', '=', subscriber).execute();
}

export async function parkEvent(
  db: Kysely<object>,
  subscriber: string,
  event: RecordedEvent,
  error: string,
  attempts: number,
  at: string,
): Promise<void> {
  await tables(db)
    .insertInto('parked_events')
    .values({
      subscriber,
      position: event.position,
      event_id: event.eventId,
      event_type: event.type,
      stream_id: event.streamId,
      event: JSON.stringify(event),
      error: error.slice(0, 2000),
      attempts,
      parked_at: at,
    })
    .onConflict((oc) => oc.columns(['subscriber', 'event_id']).doUpdateSet({ error: error.slice(0, 2000), attempts, parked_at: at }))
    .execute();
}

type ParkedRow = Tables['parked_events'];

const parkedOf = (row: ParkedRow): ParkedEvent => ({
  subscriber: row.subscriber,
  position: Number(row.position),
  eventId: row.event_id,
  eventType: row.event_type,
  streamId: row.stream_id,
  event: row.event === null ? undefined : (JSON.parse(row.event) as RecordedEvent),
  error: row.error,
  attempts: row.attempts,
  parkedAt: row.parked_at,
});

/**
 * One page of a subscriber's parked events, in log order, without the events themselves: the API shows
 * none of them, and a page of 1,000 events of 1 MB read and parsed a gigabyte on the HTTP thread.
 */
export async function pageParked(db: Kysely<object>, subscriber: string, page: PageRequest): Promise<Page<ParkedEvent>> {
  let query = tables(db)
    .selectFrom('parked_events')
    .select(['subscriber', 'position', 'event_id', 'event_type', 'stream_id', 'error', 'attempts', 'parked_at'])
    .where('subscriber', '=', subscriber)
    .orderBy('position')
    .orderBy('event_id')
    .limit(page.limit + 1);
  if (page.cursor !== undefined) {
    const [position, eventId] = decodeKeyParts(page.cursor, ['integer', 'string'] as const);
    query = query.where((eb) =>
      eb.or([eb('position', '>', position), eb.and([eb('position', '=', position), eb('event_id', '>', eventId)])]),
    );
  }
  return pageOf(
    (await query.execute()).map((row) => parkedOf({ ...row, event: null })),
    page.limit,
    (p) => [p.position, p.eventId],
  );
}

/** Every parked event, or the subscriber's, in log order: for tests and small sets (the API pages with `pageParked`). */
export async function listParked(db: Kysely<object>, subscriber?: string): Promise<ParkedEvent[]> {
  let query = tables(db).selectFrom('parked_events').selectAll().orderBy('position');
  if (subscriber !== undefined) query = query.where('subscriber', '=', subscriber);
  return (await query.execute()).map(parkedOf);
}

/**
 * A parked event by its event id, or by its position in the log it was read from. A subscriber of the
 * distributed mode reads the logs of several services, whose positions are each their own: a position
 * two of its parked events share names neither, and the operator is asked for the event id.
 */
export async function findParked(db: Kysely<object>, subscriber: string, ref: number | string): Promise<ParkedEvent | undefined> {
  const rows = await tables(db)
    .selectFrom('parked_events')
    .selectAll()
    .where('subscriber', '=', subscriber)
    .where(typeof ref === 'number' ? 'position' : 'event_id', '=', ref)
    .orderBy('event_id')
    .limit(MAX_NAMED_AT_ONE_POSITION + 1)
    .execute();
  if (rows.length > 1)
    throw new ConflictError(
      'subscriptions.ambiguous-parked-position',
      `position ${String(ref)} names ${rows.length > MAX_NAMED_AT_ONE_POSITION ? `more than ${MAX_NAMED_AT_ONE_POSITION}` : rows.length} parked events of "${subscriber}", read from the logs of different services: name one by its event_id (${rows
        .slice(0, MAX_NAMED_AT_ONE_POSITION)
        .map((row) => row.event_id)
        .join(', ')})`,
    );
  const [row] = rows;
  return row && parkedOf(row);
}

/** Event ids a position's conflict names: one per service whose log a subscriber reads. */
const MAX_NAMED_AT_ONE_POSITION = 8;

/** How many events each subscriber has parked. */
export async function countParked(db: Kysely<object>): Promise<Map<string, number>> {
  const rows = await tables(db)
    .selectFrom('parked_events')
    .select((eb) => ['subscriber', eb.fn.countAll<number | string>().as('parked')])
    .groupBy('subscriber')
    .execute();
  return new Map(rows.map((row) => [row.subscriber, Number(row.parked)]));
}

/** Forgets every event the subscriber parked: its view is rebuilt from the start. */
export async function unparkAll(db: Kysely<object>, subscriber: string): Promise<void> {
  await tables(db).deleteFrom('parked_events').where('subscriber', '=', subscriber).execute();
}

export async function unpark(db: Kysely<object>, subscriber: string, eventId: string): Promise<void> {
  await tables(db).deleteFrom('parked_events').where('subscriber', '=', subscriber).where('event_id', '=', eventId).execute();
}

/**
 * Asks for the subscriber's view to be rebuilt from the start the next time it runs: how a migration
 * that changes what a view means gets it rebuilt, on whatever feeds the subscriber (its log, or the
 * broker's stream). A second request before the rebuild is the same request.
 */
export async function requestReplay(db: Kysely<object>, subscriber: string, reason: string): Promise<void> {
  await tables(db)
    .insertInto('replay_requests')
    .values({ subscriber, reason })
    .onConflict((oc) => oc.column('subscriber').doNothing())
    .execute();
}

/** The requested replays among these subscribers, with their reasons. */
export async function replayRequests(db: Kysely<object>, subscribers: readonly string[]): Promise<Map<string, string>> {
  if (subscribers.length === 0) return new Map();
  const rows = await tables(db).selectFrom('replay_requests').selectAll().where('subscriber', 'in', subscribers).execute();
  return new Map(rows.map((row) => [row.subscriber, row.reason]));
}

/** The subscribers were rebuilt from the start: their requests are met. */
export async function forgetReplayRequests(db: Kysely<object>, subscribers: readonly string[]): Promise<void> {
  if (subscribers.length === 0) return;
  await tables(db).deleteFrom('replay_requests').where('subscriber', 'in', subscribers).execute();
}

/** The transaction a parked event is handled again in, as the subscriber sees it. */
export const parkedRetryOf = (tx: StoreTransaction): StoreTransaction => ({
  db: tx.db,
  append: (request) => tx.append(request),
  appendMany: (requests) => tx.appendMany(requests),
  isolated: (work) => tx.isolated(work),
  afterCommit: (callback) => tx.afterCommit(callback),
  parkedRetry: true,
});

/**
 * Handles a parked event again through `handle`; should it fail once more, the event stays parked,
 * its entry counting the attempt with its error and time (`parkAgain`), and the caller is told why (a
 * conflict, 409), not an internal error. A storage fault passes as it is.
 */
export async function retryingParked(
  handle: () => Promise<void>,
  isStorageFault: (error: unknown) => boolean,
  parkAgain: (error: string) => Promise<void>,
): Promise<void> {
  try {
    await handle();
  } catch (error) {
    if (isStorageFault(error)) throw error;
    await parkAgain(messageOf(error));
    throw new ConflictError('subscriptions.retry-failed', `the parked event failed again and stays parked: ${messageOf(error)}`);
  }
}
