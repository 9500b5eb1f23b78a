import type { Kysely } from 'kysely';
import type { AppendRequest, AppendResult, StoreTransaction } from '../event-store/event-store.js';
import type { RecordedEvent } from '../events.js';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { failsTheTransaction, forgottenOnFailure } from '../event-store/savepoint.js';
import { deleteCheckpoint, loadCheckpoint, loadCheckpointsNamed, parkEvent, saveCheckpoint } from './checkpoints.js';
import { actsOn, type Subscriber } from './subscriber.js';
import { messageOf } from '../errors.js';

/** Subscribers run as one: one read of the log, one transaction, one checkpoint. */
export interface SubscriberChain extends Subscriber {
  readonly members: readonly Subscriber[];
  /** Each member skips the events up to its position here: the chain may start behind a member (see joinMembers). */
  startFrom(positions: ReadonlyMap<string, number>): void;
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
  let handledUpTo: ReadonlyMap<string, number> = new Map();
  const resettable = members.filter((member) => member.reset);
  const handles = [...new Set(members.flatMap((member) => member.handles))];
  /** Whether some member acts on the event: only such events are handed back to the chain by its subscription. */
  const wanted = (event: RecordedEvent) => members.some((member) => actsOn(member, event));

  /** What the member appended, or nothing when it failed (and parked what it could not handle). */
  const handleIsolated = async (member: Subscriber, events: readonly RecordedEvent[], tx: StoreTransaction) => {
    const appended: RecordedEvent[] = [];
    try {
      await tx.isolated(() => member.handle(events, recording(tx, appended)));
      return appended;
    } catch (error) {
      if (failsTheTransaction(error)) throw error;
      appended.length = 0;
    }
    for (const event of events) {
      const own: RecordedEvent[] = [];
      try {
        await tx.isolated(() => member.handle([event], recording(tx, own)));
        appended.push(...own);
      } catch (error) {
        if (failsTheTransaction(error)) throw error;
        const reason = messageOf(error);
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
    ...(members.some((member) => member.wants) ? { wants: wanted } : {}),
    startFrom(positions) {
      handledUpTo = positions;
    },
    async handle(events, tx) {
      let seen = events.filter((event) => !handledHere.delete(event.eventId));
      for (const member of members) {
        const upTo = handledUpTo.get(member.name) ?? 0;
        const relevant = seen.filter((event) => event.position > upTo && actsOn(member, event));
        if (relevant.length === 0) continue;
        const appended = await handleIsolated(member, relevant, tx);
        // Only what the chain will read back is remembered, so nothing stays behind in memory.
        for (const event of appended) if (wanted(event)) handledHere.add(event.eventId);
        if (appended.length > 0) seen = seen.concat(appended);
      }
    },
    ...(resettable.length === 0
      ? {}
      : {
          async reset(tx: StoreTransaction) {
            handledHere.clear();
            // A replay starts the members that keep views over, also after a restart halfway through
            // it. Those that record facts (validation, processing, routing) decided every event up to
            // where the chain stands: deciding again would route old items to rules made since.
            const position = await loadCheckpoint(tx.db, name);
            const at = options.clock.now().toISOString();
            const starts = new Map<string, number>();
            for (const member of members) {
              const start = member.reset ? 0 : Math.max(position, handledUpTo.get(member.name) ?? 0);
              starts.set(member.name, start);
              await saveCheckpoint(tx.db, membershipOf(name, member.name), start, at);
            }
            handledUpTo = starts;
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
    isolated: (work) => forgottenOnFailure([appended], () => tx.isolated(work)),
    afterCommit: (callback) => tx.afterCommit(callback),
    ...(tx.parkedRetry ? { parkedRetry: true } : {}),
  };
}

/** The checkpoint row that records a member of a chain, and where it stood when it joined. */
const MEMBERSHIP = 'chain-member:';
const membershipOf = (chain: string, member: string) => `${MEMBERSHIP}${chain}:${member}`;

/**
 * Brings the chain's record of its members up to date before it runs, since INTAKE_DISABLE can
 * change them between runs:
 * - a member that left gets its own checkpoint at the chain's position, to resume there;
 * - a member that joins starts from its own checkpoint (0 if it never ran), and the chain moves back
 *   to it if it is behind, while the members it had skip what they handled.
 * A new chain that replaces subscribers which ran on their own so starts where the slowest was.
 * A chain with a checkpoint but no record of members ran before this record was kept: its present
 * members are taken to be where it is, and any other starts from its own checkpoint, which can
 * only mean handling again what it may have handled (idempotently), never skipping.
 */
export async function joinMembers(db: Kysely<object>, chain: SubscriberChain, at: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const { position, recorded, stored } = await leaveAllBut(
      trx,
      chain.name,
      chain.members.map((member) => member.name),
      at,
    );
    const starts = new Map<string, number>();
    for (const member of chain.members) {
      const joinedAt = recorded.get(member.name);
      starts.set(member.name, joinedAt === undefined ? await loadCheckpoint(trx, member.name) : Math.max(position, joinedAt));
    }
    const from = Math.min(...starts.values());
    if (from !== position) await saveCheckpoint(trx, chain.name, from, at);
    for (const [member, start] of starts) if (!stored.has(member)) await saveCheckpoint(trx, membershipOf(chain.name, member), start, at);
    chain.startFrom(starts);
  });
}

/**
 * A chain left with fewer than two members does not run: each member it had resumes from its own
 * checkpoint, set here to where the chain was, and the chain forgets its position, so that a chain
 * formed again later starts from its members' own checkpoints.
 */
export async function dissolveChain(db: Kysely<object>, name: string, present: readonly string[], at: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const { position } = await leaveAllBut(trx, name, [], at, present);
    if (position > 0) await deleteCheckpoint(trx, name);
  });
}

/** Gives every recorded member not in `staying` its own checkpoint at the chain's position, and drops its record. */
async function leaveAllBut(
  db: Kysely<object>,
  chain: string,
  staying: readonly string[],
  at: string,
  present: readonly string[] = staying,
): Promise<{ position: number; recorded: Map<string, number>; stored: ReadonlySet<string> }> {
  const position = await loadCheckpoint(db, chain);
  const prefix = membershipOf(chain, '');
  const rows = await loadCheckpointsNamed(db, prefix);
  const recorded = new Map([...rows].map(([row, joinedAt]) => [row.slice(prefix.length), joinedAt] as const));
  const stored = new Set(recorded.keys());
  // Kept before members were recorded: the members present now are the ones it ran with.
  if (position > 0 && recorded.size === 0) for (const member of present) recorded.set(member, position);
  for (const [member, joinedAt] of [...recorded]) {
    if (staying.includes(member)) continue;
    await saveCheckpoint(db, member, Math.max(position, joinedAt), at);
    if (stored.has(member)) await deleteCheckpoint(db, membershipOf(chain, member));
    recorded.delete(member);
  }
  return { position, recorded, stored };
}
