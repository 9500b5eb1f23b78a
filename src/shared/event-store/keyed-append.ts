import type { ValidationError } from '../errors.js';
import { sha256 } from '../fingerprint.js';
import type { NewEvent, RecordedEvent } from '../events.js';
import { ConcurrencyError, type AppendRequest, type EventStore } from './event-store.js';

/**
 * Idempotency by stream name: a request sent with a key records on a stream named by that key, so the
 * log itself remembers the key (for good, on every store and across replicas) and a retry meets the
 * stream its first attempt made. Contexts whose records are one stream each use this instead of a
 * table of keys.
 */
export const keyedStreamId = (kind: string, scope: string, key: string): string => `${kind}-key-${sha256(`${scope}\n${key}`)}`;

export { fingerprintOf } from '../fingerprint.js';

export interface KeyedAppend {
  readonly request: AppendRequest;
  /** The request's fingerprint (`fingerprintOf`), kept in the first event's metadata. */
  readonly fingerprint: string;
}

/** The first request's recorded events, and whether this request was a retry of it. */
export interface KeyedOutcome {
  readonly events: readonly RecordedEvent[];
  readonly replayed: boolean;
}

const FINGERPRINT = 'request_fingerprint';

/** The append of a keyed request: on a stream that must not exist, its fingerprint in each event's metadata. */
export function keyedRequest({ request, fingerprint }: KeyedAppend): AppendRequest {
  return {
    ...request,
    expectedVersion: 'no_stream',
    events: request.events.map((event): NewEvent => ({ ...event, metadata: { ...event.metadata, [FINGERPRINT]: fingerprint } })),
  };
}

/**
 * Appends a keyed request once. A retry (the stream exists, made by the same request) gets the first
 * request's events, once they are durable; the key sent with another request is refused with `reused`.
 */
export async function appendOnce(store: EventStore, keyed: KeyedAppend, reused: () => ValidationError): Promise<KeyedOutcome> {
  try {
    const { events } = await store.append(keyedRequest(keyed));
    return { events, replayed: false };
  } catch (error) {
    if (!(error instanceof ConcurrencyError)) throw error;
    return await firstAnswer(store, keyed, reused);
  }
}

/** The events a keyed request's first attempt recorded, or undefined if there was none. */
export async function earlierAnswer(
  store: Pick<EventStore, 'readStream' | 'durable'>,
  keyed: KeyedAppend,
  reused: () => ValidationError,
): Promise<KeyedOutcome | undefined> {
  const events = await store.readStream(keyed.request.streamId);
  if (events.length === 0) return undefined;
  if (events[0]?.metadata[FINGERPRINT] !== keyed.fingerprint) throw reused();
  // The answer rests on the first request's commit, which may not be synced yet.
  await store.durable?.();
  return { events, replayed: true };
}

/** A keyed request of a batch, with the key it was sent under and its place (for the refusal's message). */
export interface KeyedEntry {
  readonly key: string;
  readonly place?: number;
  readonly append: KeyedAppend;
}

/**
 * Appends, in one transaction, each request of a batch its key has not recorded yet; the others get
 * their first events. Runs where the store's writes are (the storage thread), so that an answer
 * resting on an earlier commit waits until that commit is durable.
 */
export async function appendAllOnce(
  store: EventStore,
  entries: readonly KeyedEntry[],
  reused: (entry: KeyedEntry) => ValidationError,
): Promise<KeyedOutcome[]> {
  const attempt = async () => {
    const earlier = await Promise.all(entries.map((entry) => earlierAnswer(store, entry.append, () => reused(entry))));
    const fresh = entries.filter((_entry, index) => earlier[index] === undefined).map(({ append }) => keyedRequest(append));
    const recorded = fresh.length > 0 ? await store.transaction((tx) => tx.appendMany(fresh)) : [];
    let next = 0;
    return earlier.map((answer): KeyedOutcome => answer ?? { events: recorded[next++]?.events ?? [], replayed: false });
  };
  // A concurrent retry of the same batch recorded some of it first: each round finds at least one
  // more of them recorded, so this ends within as many rounds as there are entries.
  for (let round = 0; ; round++) {
    try {
      return await attempt();
    } catch (error) {
      if (!(error instanceof ConcurrencyError) || round >= entries.length) throw error;
    }
  }
}

async function firstAnswer(store: EventStore, keyed: KeyedAppend, reused: () => ValidationError): Promise<KeyedOutcome> {
  const answer = await earlierAnswer(store, keyed, reused);
  if (!answer) throw new Error(`stream ${keyed.request.streamId} refused an append as existing, yet reads empty`);
  return answer;
}
