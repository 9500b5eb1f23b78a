import { setTimeout as sleep } from 'node:timers/promises';
import { UnavailableError } from '../errors.js';
import { oneAtATime } from '../one-at-a-time.js';
import { ConcurrencyError, type AppendRequest, type EventStore } from './event-store.js';
import { lostToAnotherTransaction } from './storage-fault.js';

/** What a change decided from the state it loaded: how to commit it, with the version it read. */
export type Commit<T> = () => Promise<T>;

/** A change that is a lone append: the append, and what to answer once it is stored. */
export interface Decision<T> {
  readonly append: AppendRequest;
  readonly result: T;
}

// Each round settles at least one of the racing processes.
const MAX_DECISIONS = 32;

/**
 * Changes to one stream that load its state, decide, and commit with the version they read. When
 * another change committed in between (two keys issued at once, a rename beside a revoke), the change
 * decides again on the new state, as the second of two requests one after the other would:
 * independent changes both succeed, a repeated one gets the answer it would get then (a deleted
 * rule's 404). Changes made through this process wait for each other per stream, so only another
 * process's can race one; a change still beaten after MAX_DECISIONS rounds is the server's to retry
 * later (503 `busyCode`), never the caller's conflict. A commit may be more than an append (a rule's
 * is a transaction that also seals its credentials): the whole decision is made again each round.
 */
export function retriedCommits(busyCode: string, describe: (key: string) => string) {
  const perKey = oneAtATime();
  return <T>(key: string, decide: () => Promise<Commit<T>>): Promise<T> =>
    perKey(key, async () => {
      for (let attempt = 1; ; attempt++) {
        const commit = await decide();
        try {
          return await commit();
        } catch (error) {
          // Beaten to the stream's version, or chosen to end a deadlock (a rule's delete against its attempts).
          if (!(error instanceof ConcurrencyError || lostToAnotherTransaction(error))) throw error;
          if (attempt >= MAX_DECISIONS) {
            throw new UnavailableError(busyCode, `${describe(key)} is being changed by other requests; retry shortly`, 1);
          }
          // Each round lets one of the processes racing through it win: a growing random wait spreads the others.
          await sleep(Math.random() * Math.min(2 ** attempt, 100));
        }
      }
    });
}

/** `retriedCommits` for changes that are one append to the stream. */
export function retriedChanges(busyCode: string, describe: (streamId: string) => string) {
  const commits = retriedCommits(busyCode, describe);
  return <T>(store: EventStore, streamId: string, decide: () => Promise<Decision<T>>): Promise<T> =>
    commits(streamId, async () => {
      const { append, result } = await decide();
      return async () => {
        await store.append(append);
        return result;
      };
    });
}
