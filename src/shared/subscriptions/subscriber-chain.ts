import type { Kysely } from 'kysely';
import type { AppendRequest, AppendResult, StoreTransaction } from '../event-store/event-store.js';
import type { RecordedEvent } from '../events.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoints.js';
import type { Subscriber } from './subscriber.js';

/** Subscribers run as one: one read of the log, one transaction, one checkpoint. */
export interface SubscriberChain extends Subscriber {
  readonly members: readonly Subscriber[];
}

/**
 * Runs subscribers as one pass over each batch: every member sees the batch and whatever the
 * members before it appended in the same transaction. An item ingested, validated, processed and
 * projected in one batch is then written to each view once instead of once per stage.
 *
 * The events a chain appends come back to it through the log later; it skips them, since its
 * members already handled them in the pass that appended them. After a restart that memory is
 * gone and they are handled again, which members do idempotently, as they must anyway.
 */
export function subscriberChain(name: string, members: readonly Subscriber[]): SubscriberChain {
  const handledHere = new Set<string>();
  const resettable = members.filter((member) => member.reset);
  const handles = [...new Set(members.flatMap((member) => member.handles))];
  return {
    name,
    members,
    handles,
    async handle(events, tx) {
      let seen = events.filter((event) => !handledHere.delete(event.eventId));
      for (const member of members) {
        const relevant = seen.filter((event) => member.handles.includes(event.type));
        if (relevant.length === 0) continue;
        const appended: RecordedEvent[] = [];
        await member.handle(relevant, recording(tx, appended));
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
