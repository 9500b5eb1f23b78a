import type { Kysely } from 'kysely';
import type { AppendRequest, AppendResult, StoreTransaction } from '../event-store/event-store.js';
import type { RecordedEvent } from '../events.js';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { forgottenOnFailure, TransactionAborted } from '../event-store/savepoint.js';
import { isStorageFault } from '../event-store/storage-fault.js';
import { loadCheckpoint, parkEvent, saveCheckpoint } from './checkpoints.js';
import type { Subscriber } from './subscriber.js';

/** Subscribers run as one: one read of the log, one transaction, one checkpoint. */
export interface SubscriberChain extends Subscriber {
  readonly members: readonly Subscriber[];
}

export interface ChainOptions {
  readonly clock: Clock;
  readonly logger: Pick<Logger, 'error'>;
}

/**
 * Runs subscribers as one pass over each batch: every member sees the batch and whatever the
 * members before it appended in the same transaction. An item ingested, validated, processed and
 * projected in one batch is then written to each view once instead of once per stage.
 *
 * Members stay as isolated as subscribers of their own: each works in a savepoint, and one that
 * fails on a batch goes through it again event by event. An event it still fails on is parked
 * under that member's name, and the other members and events go on. A storage fault is no event's
 * doing: it fails the whole pass, which the subscription retries.
 *
 * The events a chain appends come back to it through the log later; it skips them, since its
 * members already handled them in the pass that appended them. After a restart that memory is
 * gone and they are handled again, which members do idempotently, as they must anyway.
 */
export function subscriberChain(name: string, members: readonly Subscriber[], options: ChainOptions): SubscriberChain {
  const handledHere = new Set<string>();
  const resettable = members.filter((member) => member.reset);
  const handles = [...new Set(members.flatMap((member) => member.handles))];

  /** What the member appended, or nothing when it failed (and parked what it could not handle). */
  const handleIsolated = async (member: Subscriber, events: readonly RecordedEvent[], tx: StoreTransaction) => {
    const appended: RecordedEvent[] = [];
    try {
      await tx.isolated(() => member.handle(events, recording(tx, appended)));
      return appended;
    } catch (error) {
      if (failsThePass(error)) throw error;
      appended.length = 0;
    }
    for (const event of events) {
      const own: RecordedEvent[] = [];
      try {
        await tx.isolated(() => member.handle([event], recording(tx, own)));
        appended.push(...own);
      } catch (error) {
        if (failsThePass(error)) throw error;
        const reason = error instanceof Error ? error.message : String(error);
        await parkEvent(tx.db, member.name, event, reason, 1, options.clock.now().toISOString());
        options.logger.error(
          { subscriber: member.name, chain: name, position: event.position, event_type: event.type, err: error },
          'event parked: the subscriber failed on it',
        );
      }
    }
    return appended;
  };

  return {
    name,
    members,
    handles,
    async handle(events, tx) {
      let seen = events.filter((event) => !handledHere.delete(event.eventId));
      for (const member of members) {
        const relevant = seen.filter((event) => member.handles.includes(event.type));
        if (relevant.length === 0) continue;
        const appended = await handleIsolated(member, relevant, tx);
        // Only what the chain will read back is remembered, so nothing stays behind in memory.
        for (const event of appended) if (handles.includes(event.type)) handledHere.add(event.eventId);
        if (appended.length > 0) seen = seen.concat(appended);
      }
    },
    ...(resettable.length === 0
      ? {}
      : {
          async reset(tx: StoreTransaction) {
            handledHere.clear();
            for (const member of resettable) await member.reset?.(tx);
          },
        }),
  };
}

/** No event's doing, or nothing more can happen in this transaction: the subscription retries the pass. */
const failsThePass = (error: unknown) => isStorageFault(error) || error instanceof TransactionAborted;

/** The transaction as a member sees it, noting every event the member appends. */
function recording(tx: StoreTransaction, appended: RecordedEvent[]): StoreTransaction {
  const note = (results: AppendResult[]) => {
    for (const result of results) appended.push(...result.events);
    return results;
  };
  return {
    db: tx.db,
    async append(request: AppendRequest) {
      const [result] = note([await tx.append(request)]);
      if (!result) throw new Error('append produced no result');
      return result;
    },
    appendMany: async (requests) => note(await tx.appendMany(requests)),
    isolated: (work) => forgottenOnFailure(appended, () => tx.isolated(work)),
  };
}

/**
 * A chain that replaces subscribers which ran on their own starts where the slowest of them was,
 * instead of at the start of the log (which would be correct too, only slow on a large log).
 */
export async function inheritCheckpoint(
  db: Kysely<object>,
  chain: SubscriberChain,
  at: string,
): Promise<void> {
  if ((await loadCheckpoint(db, chain.name)) > 0) return;
  const positions = await Promise.all(chain.members.map((member) => loadCheckpoint(db, member.name)));
  const from = Math.min(...positions);
  if (from > 0) await saveCheckpoint(db, chain.name, from, at);
}
