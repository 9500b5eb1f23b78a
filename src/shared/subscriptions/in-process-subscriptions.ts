import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { ConflictError, messageOf, NotFoundError } from '../errors.js';
import type { EventStore, StoreTransaction } from '../event-store/event-store.js';
import { logFollower, type LogFollower } from '../event-store/log-follower.js';
import { isStorageFault } from '../event-store/storage-fault.js';
import type { Fence } from '../postgres/schema-lock.js';
import type { RecordedEvent } from '../events.js';
import {
  countParked,
  findParked,
  forgetReplayRequests,
  loadCheckpoint,
  parkEvent,
  replayRequests,
  replaysUnderWay,
  parkedRetryOf,
  retryingParked,
  saveCheckpoint,
  startReplayCheckpoint,
  unpark,
  unparkAll,
} from './checkpoints.js';
import type { SubscriberChain } from './subscriber-chain.js';
import { actsOn, type Subscriber } from './subscriber.js';
import { oneAtATime } from '../one-at-a-time.js';

export interface SubscriptionOptions {
  readonly store: EventStore;
  readonly db: Kysely<object>;
  readonly clock: Clock;
  readonly logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  readonly subscribers: readonly Subscriber[];
  readonly batchSize?: number;
  /** Fallback when no commit signal arrives (e.g. another process wrote). */
  readonly pollIntervalMs?: number;
  /** Pause after a partial batch, so a steady trickle is handled in batches. */
  readonly minBatchIntervalMs?: number;
  /** Attempts on one event before it is parked and the subscriber moves on. */
  readonly maxAttempts?: number;
  readonly retryBaseMs?: number;
  /**
   * Run first in each of the subscribers' transactions: throwing (a storage fault) holds them back
   * without parking anything. A server on PostgreSQL fences them with the lock a replay takes.
   */
  readonly fence?: Fence;
  /** For backlog(): how long without a batch makes a subscriber stuck (1 s). */
  readonly stalledMs?: number;
  /** For backlog(): within how many events of the head a subscriber follows it (32,768, the log's in-memory tail). */
  readonly followingEvents?: number;
}

export interface SubscriberStatus {
  readonly name: string;
  readonly position: number;
  readonly head: number;
  readonly lag: number;
  readonly parked: number;
  /** `retrying`: the storage failed and the subscriber waits to try again; `stopped`: not running. */
  readonly state: 'running' | 'retrying' | 'stopped';
  /** The fault it is waiting out, while retrying. */
  readonly fault?: string;
  /**
   * While it rebuilds its view after a replay: the head when the replay began. Until it gets there its
   * view is incomplete, whatever the lag says.
   */
  readonly replayingUntil?: number;
}

export interface Subscriptions {
  start(): void;
  stop(): Promise<void>;
  status(): Promise<SubscriberStatus[]>;
  /**
   * Resolves once every subscriber has handled every event acknowledged before the call (and those
   * subscribers appended meanwhile).
   */
  caughtUp(timeoutMs?: number): Promise<void>;
  /** Throws away a subscriber's view and checkpoint and rebuilds it from the start of the log. */
  replay(name: string): Promise<void>;
  /** Handles a parked event (given by its position or its event id) again; on success it leaves the parking lot. */
  retryParked(name: string, ref: number | string): Promise<void>;
  /**
   * Gives up on a parked event: it is no longer parked, and the subscriber never handles it (an event
   * nothing will ever handle, which would keep readiness degraded for good). The operator's call.
   */
  discardParked(name: string, ref: number | string): Promise<void>;
  names(): string[];
  /** Subscribers that keep a view and can therefore be replayed. */
  replayable(): string[];
}

/** Subscriptions that run here, whose progress can be looked at without waiting. */
export interface InProcessSubscriptions extends Subscriptions {
  /**
   * How many events the furthest behind of the subscribers that follow the head has yet to read: those
   * running, without a fault, that moved on within the last second and were near the head within the
   * last few. One replaying, catching up after a restart, or stuck on an event never counts.
   */
  backlog(): number;
}

interface Runner {
  readonly subscriber: Subscriber;
  position: number;
  running: boolean;
  fault: string | undefined;
  loop: Promise<void> | undefined;
  readonly watches: Set<HeadWatch>;
  /** The commits announced that it has not read yet: a read already under way may miss one. */
  readonly follower: LogFollower;
  /** When it last handled a batch (`performance.now()`: a step of the wall clock never makes it look stalled). */
  movedAt: number;
  /** When it was last within FOLLOWING_EVENTS of the head; never after it went back to an earlier position. */
  followingAt: number;
}

/**
 * Whether a runner has handled the event at a head position. Positions need not grow in read order
 * (events a PostgreSQL log holds from before position order are read in their old commit order), so
 * "position >= head" cannot tell; the runner reports the positions it handles instead, from before the
 * head is known.
 */
interface HeadWatch {
  head: number | undefined;
  reached: boolean;
  readonly handledMeanwhile: Set<number>;
}

/** A subscriber that has not handled a batch for this long holds nobody up (see backlog()). */
const STALLED_MS = 1000;
/** Within this many events of the head it follows the head; it counts for this long after it last did. */
const FOLLOWING_EVENTS = 32_768;
const FOLLOWING_MS = 5000;

/**
 * The embedded delivery mechanism: each subscriber reads the shared log after its checkpoint,
 * in batches, and stores its checkpoint in the transaction of its own writes, so a crash replays
 * at most an uncommitted batch. Woken by the store after each commit, with a poll as fallback.
 */
export function inProcessSubscriptions(options: SubscriptionOptions): InProcessSubscriptions {
  const { store, db, clock, logger } = options;
  const batchSize = options.batchSize ?? 500;
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  const maxAttempts = options.maxAttempts ?? 5;
  const retryBaseMs = options.retryBaseMs ?? 50;
  const minBatchIntervalMs = options.minBatchIntervalMs ?? 5;
  const stalledMs = options.stalledMs ?? STALLED_MS;
  const followingEvents = options.followingEvents ?? FOLLOWING_EVENTS;
  const runners = new Map<string, Runner>(
    options.subscribers.map((s) => [
      s.name,
      {
        subscriber: s,
        position: 0,
        running: false,
        fault: undefined,
        loop: undefined,
        watches: new Set<HeadWatch>(),
        follower: logFollower(pollIntervalMs),
        movedAt: Number.NEGATIVE_INFINITY,
        followingAt: Number.NEGATIVE_INFINITY,
      },
    ]),
  );
  let wakers: Array<() => void> = [];
  let unsubscribe: (() => void) | undefined;
  /** The newest head announced by the store. */
  let head = 0;

  /** Notes that the runner moved to `position`: for the backlog, whether it follows the head. */
  const moved = (runner: Runner, position: number) => {
    const now = performance.now();
    if (position < runner.position) runner.followingAt = Number.NEGATIVE_INFINITY;
    runner.position = position;
    runner.movedAt = now;
    if (head - position <= followingEvents) runner.followingAt = now;
  };

  const wakeAll = () => {
    const current = wakers;
    wakers = [];
    for (const wake of current) wake();
  };
  const nextWake = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wakers.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });

  const transaction = <T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T> =>
    store.transaction(async (tx) => {
      await options.fence?.(tx.db);
      return work(tx);
    });

  const commit = (subscriber: Subscriber, events: readonly RecordedEvent[]) =>
    transaction(async (tx) => {
      const relevant = events.filter((event) => actsOn(subscriber, event));
      if (relevant.length > 0) await subscriber.handle(relevant, tx);
      await saveCheckpoint(tx.db, subscriber.name, events.at(-1)?.position ?? 0, clock.now().toISOString());
    });

  const handleOne = async (runner: Runner, event: RecordedEvent) => {
    let lastError: unknown;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      try {
        await commit(runner.subscriber, [event]);
        return;
      } catch (error) {
        lastError = error;
        // The storage failing is no fault of the event's: it is waited out, never parked.
        if (!runner.running || isStorageFault(error)) throw error;
        if (attempt < maxAttempts) await sleep(Math.min(retryBaseMs * 2 ** (attempt - 1), 5000));
      }
    }
    // A poison event must not block the subscriber forever: park it, visible and retryable.
    const reason = lastError instanceof Error ? lastError.message : String(lastError);
    await transaction(async (tx) => {
      const at = clock.now().toISOString();
      await parkEvent(tx.db, runner.subscriber.name, event, reason, maxAttempts, at);
      await saveCheckpoint(tx.db, runner.subscriber.name, event.position, at);
    });
    logger.error(
      { subscriber: runner.subscriber.name, position: event.position, event_type: event.type, err: lastError },
      'event parked after repeated failures',
    );
  };

  /**
   * Runs the subscriber until it is stopped. A storage fault (full disk, read-only file, lost
   * connection) never stops it: it waits with growing pauses and resumes where it was once the
   * fault clears, reporting `retrying` meanwhile.
   */
  const run = async (runner: Runner) => {
    for (let failures = 0; runner.running;) {
      try {
        await follow(runner, (handled) => {
          runner.fault = undefined;
          // A write that proves the storage answers again clears the fault; only a batch handled ends
          // the backoff (a full disk still takes a checkpoint row, never the batch).
          if (handled) failures = 0;
        });
      } catch (error) {
        if (!runner.running) return;
        failures += 1;
        // Said at the first failure, then at the 2nd, 4th, 8th...: a fault that lasts does not flood the log.
        if ((failures & (failures - 1)) === 0) {
          // A storage fault is the operator's to clear and says all in its message; a stack is for a defect.
          if (isStorageFault(error))
            logger.warn(
              { subscriber: runner.subscriber.name, fault: messageOf(error), failures },
              'storage unavailable to the subscriber; retrying with backoff',
            );
          else logger.error({ subscriber: runner.subscriber.name, err: error, failures }, 'subscriber failed; retrying with backoff');
        }
        runner.fault = messageOf(error);
        await sleep(Math.min(retryBaseMs * 2 ** Math.min(failures, 16), MAX_FAULT_PAUSE_MS));
      }
    }
  };

  const follow = async (runner: Runner, progressed: (handled: boolean) => void) => {
    await replayIfRequested(runner);
    moved(runner, await loadCheckpoint(db, runner.subscriber.name));
    if (runner.fault !== undefined) {
      // A write proves the fault cleared, even when no new event arrives to be handled.
      await transaction((tx) => saveCheckpoint(tx.db, runner.subscriber.name, runner.position, clock.now().toISOString()));
      progressed(false);
    }
    let savedAt = performance.now();
    let unsaved = false;
    while (runner.running) {
      const batch = await store.readAll({ after: runner.position, limit: batchSize, reader: runner.subscriber.name });
      runner.follower.read(batch);
      if (batch.length === 0) {
        if (unsaved) {
          await transaction((tx) => saveCheckpoint(tx.db, runner.subscriber.name, runner.position, clock.now().toISOString()));
          unsaved = false;
        }
        // Halted while it read: the wake-up was sent before this wait, which must not begin.
        if (runner.running) await nextWake(runner.follower.idleWaitMs());
        continue;
      }
      const relevant = batch.some((event) => actsOn(runner.subscriber, event));
      if (relevant || performance.now() - savedAt > IDLE_CHECKPOINT_MS) {
        try {
          await commit(runner.subscriber, batch);
        } catch (error) {
          if (!runner.running) return;
          if (isStorageFault(error)) throw error;
          logger.warn({ subscriber: runner.subscriber.name, err: error }, 'batch failed; handling its events one by one');
          for (const event of batch) await handleOne(runner, event);
        }
        savedAt = performance.now();
        unsaved = false;
      } else {
        // Nothing to do: no transaction, no write. Re-reading these after a crash costs nothing.
        unsaved = true;
      }
      moved(runner, batch.at(-1)?.position ?? runner.position);
      progressed(true);
      for (const watch of runner.watches) observe(watch, batch);
      // Under a steady trickle, a short pause gathers the next events into one batch and one
      // transaction instead of one each: fewer commits for a few milliseconds of lag.
      if (batch.length < batchSize && minBatchIntervalMs > 0) await sleep(minBatchIntervalMs);
      // Catching up (a replay, a restart after a backlog), batches follow each other through promises
      // alone: without a turn of the event loop between them, appends would wait until it caught up.
      else await nextTurn();
    }
  };

  const launch = (runner: Runner) => {
    runner.running = true;
    runner.loop = run(runner).catch((error: unknown) => {
      if (runner.running) logger.error({ subscriber: runner.subscriber.name, err: error }, 'subscriber stopped');
      runner.running = false;
    });
  };

  const oneReplayAtATime = oneAtATime();

  const halt = async (runner: Runner) => {
    runner.running = false;
    wakeAll();
    await runner.loop;
    runner.loop = undefined;
  };

  // A member of a chain is run, replayed and reported through its chain.
  const membersOf = (subscriber: Subscriber): readonly Subscriber[] =>
    'members' in subscriber ? (subscriber as SubscriberChain).members : [subscriber];
  const namesOf = (runner: Runner) => [...new Set([runner.subscriber.name, ...membersOf(runner.subscriber).map((m) => m.name)])];
  /**
   * The names under which a replay handles every event again: a subscriber's own, or a chain's members
   * that keep views (and the chain's, where its entries from before members were isolated are kept,
   * when every member does).
   */
  const rebuiltBy = (runner: Runner) => {
    const members = membersOf(runner.subscriber);
    const rebuilt = members.filter((m) => m.reset).map((m) => m.name);
    return rebuilt.length === members.length ? [...new Set([runner.subscriber.name, ...rebuilt])] : rebuilt;
  };

  /**
   * Throws away the runner's views and starts it from the start of the log, in the transaction
   * given, to rebuild them up to `until` (the head). A chain starts over as a whole: its view-keeping
   * members rebuild, the others skip what they decided. Any replay requested for it is met by this one.
   * How far the rebuild has to go is stored with the checkpoint: a restart goes on reporting it.
   */
  const startOver = async (runner: Runner, tx: StoreTransaction, until: number) => {
    await runner.subscriber.reset?.(tx);
    await startReplayCheckpoint(tx.db, runner.subscriber.name, until, clock.now().toISOString());
    // Only what is handled again: the events a member that records facts parked stay to be retried,
    // since the replay leaves it where it stood.
    for (const subscriber of rebuiltBy(runner)) await unparkAll(tx.db, subscriber);
    await forgetReplayRequests(tx.db, namesOf(runner));
  };

  /** A replay asked for while it was not running (by a migration): done before it reads on. */
  const replayIfRequested = async (runner: Runner) => {
    const requests = await replayRequests(db, namesOf(runner));
    if (requests.size === 0) return;
    if (!runner.subscriber.reset) {
      logger.warn(
        { subscriber: runner.subscriber.name, requests: Object.fromEntries(requests) },
        'a replay was requested of a subscriber that keeps no view; ignored',
      );
      return;
    }
    const until = await store.headPosition();
    await transaction((tx) => startOver(runner, tx, until));
    moved(runner, 0);
    logger.info(
      { subscriber: runner.subscriber.name, reasons: [...requests.values()] },
      'replaying from the start of the log, as requested',
    );
  };
  const runnerOf = (name: string) => {
    // By the names the status lists: a chain's members, never the chain itself (`pipeline` named a replay of all its views).
    const runner = [...runners.values()].find((r) => membersOf(r.subscriber).some((m) => m.name === name));
    if (!runner)
      throw new NotFoundError(
        'subscriptions.unknown-subscriber',
        // The names the status lists: a chain's members, not the chain.
        `no subscriber named "${name}" (known: ${[...new Set([...runners.values()].flatMap((r) => membersOf(r.subscriber).map((m) => m.name)))].join(', ')})`,
      );
    return runner;
  };

  /** Waits until every subscriber handled the event that is the committed head when called; answers that head. */
  const reach = async (timeoutMs: number): Promise<number> => {
    // Watching starts before the head is read: a batch handled meanwhile may already hold it.
    const watched = [...runners.values()].map((runner) => {
      const watch: HeadWatch = { head: undefined, reached: false, handledMeanwhile: new Set() };
      runner.watches.add(watch);
      return { runner, watch };
    });
    try {
      // The last event now: each runner stands on it or reads it in a later batch.
      const head = await store.headPosition();
      for (const { runner, watch } of watched) {
        watch.head = head;
        // Standing on the head or past it counts too. Past it: events appended while the head was being
        // read (by subscribers, say) may be handled before the read answers.
        watch.reached = watch.handledMeanwhile.has(head) || runner.position >= head;
        watch.handledMeanwhile.clear();
      }
      const deadline = performance.now() + timeoutMs;
      const behindHead = ({ runner, watch }: (typeof watched)[number]) => runner.position < head && !watch.reached;
      while (watched.some(behindHead)) {
        if (performance.now() > deadline) {
          const behind = watched.filter(behindHead);
          throw new Error(
            `subscribers did not reach position ${head} within ${timeoutMs} ms: ${behind.map(({ runner }) => `${runner.subscriber.name} at ${runner.position}${runner.running ? '' : ' (stopped)'}`).join(', ')}`,
          );
        }
        await sleep(5);
      }
      return head;
    } finally {
      for (const { runner, watch } of watched) runner.watches.delete(watch);
    }
  };

  return {
    start() {
      unsubscribe ??= store.onAppended((announced) => {
        head = Math.max(head, announced);
        for (const runner of runners.values()) runner.follower.announced(announced);
        wakeAll();
      });
      // Until the first append, the head is where the log stood at start.
      void store.headPosition().then(
        (position) => (head = Math.max(head, position)),
        () => undefined,
      );
      for (const runner of runners.values()) if (!runner.running) launch(runner);
    },

    async stop() {
      unsubscribe?.();
      unsubscribe = undefined;
      await Promise.all([...runners.values()].map(halt));
    },

    backlog() {
      const now = performance.now();
      let most = 0;
      for (const runner of runners.values()) {
        if (!runner.running || runner.fault !== undefined) continue;
        if (now - runner.movedAt > stalledMs || now - runner.followingAt > FOLLOWING_MS) continue;
        most = Math.max(most, head - runner.position);
      }
      return most;
    },

    async status() {
      const head = await store.headPosition();
      const parked = await countParked(db);
      const replays = await replaysUnderWay(db);
      return [...runners.values()].flatMap((runner) => {
        // Stored, since a replay outlives a restart; over once read that far (its checkpoint may lag behind).
        const until = replays.get(runner.subscriber.name);
        const replaying = until === undefined || runner.position >= until ? {} : { replayingUntil: until };
        return membersOf(runner.subscriber).map((member) => ({
          name: member.name,
          position: runner.position,
          head,
          lag: Math.max(0, head - runner.position),
          // A chain parks an event under the member that failed on it (the chain's own name: from before).
          parked: (parked.get(member.name) ?? 0) + (member.name === runner.subscriber.name ? 0 : (parked.get(runner.subscriber.name) ?? 0)),
          state: !runner.running ? 'stopped' : runner.fault === undefined ? 'running' : 'retrying',
          ...(runner.fault === undefined ? {} : { fault: runner.fault }),
          ...replaying,
        }));
      });
    },

    async caughtUp(timeoutMs = 30_000) {
      // Subscribers append too (a verdict leads to an outcome): wait until the head stops moving.
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const head = await reach(Math.max(1, deadline - performance.now()));
        if ((await store.headPosition()) === head) return;
      }
    },

    async replay(name) {
      const runner = runnerOf(name);
      const named = membersOf(runner.subscriber).find((m) => m.name === name) ?? runner.subscriber;
      if (!named.reset || !runner.subscriber.reset) {
        throw new ConflictError(
          'subscriptions.not-replayable',
          `"${name}" records facts rather than keeping a view; replaying it would record them twice`,
        );
      }
      // One at a time: a second replay's reset beside the first one's rebuilding loop left statistics
      // whose items and buckets disagreed (PostgreSQL's transactions overlap).
      return oneReplayAtATime(runner.subscriber.name, async () => {
        const wasRunning = runner.running;
        await halt(runner);
        try {
          const until = await store.headPosition();
          await transaction((tx) => startOver(runner, tx, until));
          moved(runner, 0);
          logger.info({ subscriber: runner.subscriber.name, requested: name }, 'replaying from the start of the log');
        } finally {
          // A reset that failed changed nothing: the runner goes on from where it stood.
          if (wasRunning) launch(runner);
        }
      });
    },

    async retryParked(requested, ref) {
      const runner = runnerOf(requested);
      // Parked under the member that failed, or under the chain itself (entries from before members were isolated).
      const member = membersOf(runner.subscriber).find((m) => m.name === requested);
      const parkedByMember = member && member !== runner.subscriber ? await findParked(db, member.name, ref) : undefined;
      const [handler, parked] = parkedByMember
        ? [member as Subscriber, parkedByMember]
        : [runner.subscriber, await findParked(db, runner.subscriber.name, ref)];
      // Through its stream rather than `readAll` after `position - 1`: the number before a position
      // need not be an event, nor come before it in the store's read order.
      const event = parked && (await store.readStream(parked.streamId)).find((e) => e.eventId === parked.eventId);
      if (!event)
        throw new NotFoundError(
          'subscriptions.not-parked',
          `"${requested}" has no parked event ${typeof ref === 'number' ? 'at position ' : ''}${ref}`,
        );
      await retryingParked(
        () =>
          transaction(async (tx) => {
            if (handler.handles.includes(event.type)) await handler.handle([event], parkedRetryOf(tx));
            await unpark(tx.db, parked.subscriber, event.eventId);
          }),
        isStorageFault,
        (error) => transaction((tx) => parkEvent(tx.db, parked.subscriber, event, error, parked.attempts + 1, clock.now().toISOString())),
      );
    },

    async discardParked(requested, ref) {
      const runner = runnerOf(requested);
      // Under the member, or under the chain itself (entries from before members were isolated).
      const parked = (await findParked(db, requested, ref)) ?? (await findParked(db, runner.subscriber.name, ref));
      if (!parked)
        throw new NotFoundError(
          'subscriptions.not-parked',
          `"${requested}" has no parked event ${typeof ref === 'number' ? 'at position ' : ''}${ref}`,
        );
      await transaction((tx) => unpark(tx.db, parked.subscriber, parked.eventId));
      logger.warn(
        { subscriber: requested, event_id: parked.eventId, position: parked.position, error: parked.error },
        'parked event discarded: it will not be handled',
      );
    },

    names: () => [...runners.values()].flatMap((r) => membersOf(r.subscriber).map((m) => m.name)),
    replayable: () =>
      [...runners.values()].flatMap((r) =>
        membersOf(r.subscriber)
          .filter((m) => m.reset !== undefined)
          .map((m) => m.name),
      ),
  };
}

function observe(watch: HeadWatch, batch: readonly RecordedEvent[]): void {
  if (watch.head === undefined) for (const event of batch) watch.handledMeanwhile.add(event.position);
  else if (batch.some((event) => event.position === watch.head)) watch.reached = true;
}

// The longest pause between two tries while the storage fails: a cleared fault is noticed this fast.
const MAX_FAULT_PAUSE_MS = 5000;

// A subscriber with nothing to handle still records how far it read, at most this often.
const IDLE_CHECKPOINT_MS = 1000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
