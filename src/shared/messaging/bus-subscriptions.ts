import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { ConflictError, messageOf, NotFoundError } from '../errors.js';
import type { RecordedEvent } from '../events.js';
import type { EventStore, StoreTransaction } from '../event-store/event-store.js';
import { isStorageFault } from '../event-store/storage-fault.js';
import type { Fence } from '../postgres/schema-lock.js';
import {
  countParked,
  endReplay,
  findParked,
  forgetReplayRequests,
  parkEvent,
  replayRequests,
  replaysUnderWay,
  parkedRetryOf,
  retryingParked,
  startReplayCheckpoint,
  unpark,
  unparkAll,
} from '../subscriptions/checkpoints.js';
import type { SubscriberStatus } from '../subscriptions/in-process-subscriptions.js';
import { actsOn, type Subscriber } from '../subscriptions/subscriber.js';
import { allSubjectsOf, eventOfMessage, subjectsOfSubscriber } from './event-messages.js';
import { MessageBusConfigurationError, type ConsumerProgress, type Consumption, type MessageBus } from './message-bus.js';
import { rowPieces } from '../sql/statement-shapes.js';
import { oneAtATime } from '../one-at-a-time.js';

type Tables = { consumed_events: { subscriber: string; event_id: string; consumed_at: string } };

/** How long a replica whose consumer was lost waits before it attaches again (see `reattach`). */
const REATTACH_PAUSE_MS = 2_000;

export interface BusSubscriptionOptions {
  readonly bus: MessageBus;
  readonly store: EventStore;
  /** The role's own tables: its consumed events and parked events. */
  readonly db: Kysely<object>;
  readonly clock: Clock;
  readonly logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** Prefix of the durable consumer names: replicas of one role share `<role>-<subscriber>`. */
  readonly role: string;
  readonly subscribers: readonly Subscriber[];
  /** What the consumers read, when not only the event types each subscriber handles. */
  readonly subjects?: readonly string[];
  /**
   * The deployment's subject prefix: each consumer then reads only the types its subscriber handles
   * (`<prefix>.*.<EventType>`), so a role is not handed, and does not acknowledge, every event of the deployment.
   */
  readonly subjectPrefix?: string;
  /** The role that publishes a context's events (with `subjectPrefix`): a subscriber naming its source reads only that role's. */
  readonly roleOf?: (context: string) => string | undefined;
  readonly maxDeliver?: number;
  readonly ackWaitMs?: number;
  readonly retryDelayMs?: number;
  /** Events in hand at once per subscriber, and so at most committed together. */
  readonly concurrency?: number;
  /** Messages fetched ahead of handling. */
  readonly prefetch?: number;
  /**
   * Least time between the starts of two transactions of one subscriber (default 0). Deliveries that
   * arrive sooner wait and share the next one: while events come faster than this, fewer and fuller
   * transactions for up to this much more lag per hop; an event after a quiet spell goes at once.
   */
  readonly commitIntervalMs?: number;
  /** Observes each commit: how many events it handled for the first time (metrics). */
  readonly onConsumed?: (subscriber: string, count: number) => void;
  /**
   * Run first in each of the subscribers' transactions: throwing (a storage fault) holds them back
   * without parking anything. A serving role fences them with the lock `intake replay` takes.
   */
  readonly fence?: Fence;
}

export interface BusSubscriptions {
  start(): void;
  stop(): Promise<void>;
  /** Whether every consumer is attached to the broker. */
  attached(): boolean;
  /** Why consumers cannot attach when retrying will not help (the broker refuses the configuration). */
  misconfigured(): string | undefined;
  /** The subscribers waiting out a fault (their database failing, a handler error), with its reason. */
  /** `busy`: the fault is the database's connections all being in use (503 storage.busy), not an outage. */
  faulted(): ReadonlyArray<{ readonly name: string; readonly fault: string; readonly busy: boolean }>;
  /** Per subscriber: the broker's acknowledgement marker as position, and the messages left as lag. */
  status(): Promise<SubscriberStatus[]>;
  /** The views being rebuilt by a replay of this process, each with the stream's head when it began. */
  replaying(): Promise<ReadonlyArray<{ readonly name: string; readonly until: number }>>;
  /**
   * Throws away a subscriber's view and consumes the stream again from its first message: the
   * durable consumer is rewound on the broker, so the stream must still hold what the view was built
   * from (JetStream keeps everything unless the stream was given limits).
   */
  replay(name: string): Promise<void>;
  /** Handles a parked event (by event id, or by its position in its service's log) again; on success it leaves the parking lot. */
  retryParked(name: string, ref: number | string): Promise<void>;
  /** Gives up on a parked event (see Subscriptions.discardParked). */
  discardParked(name: string, ref: number | string): Promise<void>;
  names(): string[];
  replayable(): string[];
}

/**
 * Feeds subscribers from the broker (distributed mode). The events in flight are handled in one
 * transaction, together with rows recording that this subscriber consumed them: the broker
 * acknowledges only after that commit, and a redelivered event finds its row and changes nothing. Consumers attach in the
 * background and keep retrying while the broker is unreachable.
 */
export function busSubscriptions(options: BusSubscriptionOptions): BusSubscriptions {
  const { bus, store, clock, logger } = options;
  const commitIntervalMs = options.commitIntervalMs ?? 0;
  const consumptions = new Map<string, Consumption>();
  const oneReplayAtATime = oneAtATime();
  // The stream's head when a replay began, per subscriber, until its consumer has acknowledged that far
  // (or has nothing left): its view answers, but incompletely, meanwhile. Stored with the role's
  // checkpoints, so that a restart, and every replica of the role, goes on reporting it.
  const streamHead = async () => (await bus.head?.().catch(() => undefined)) ?? Number.MAX_SAFE_INTEGER;
  /** The marker, while the consumer's progress says the replay is not over yet; cleared once it is. */
  const stillReplaying = async (name: string, until: number | undefined, progress: ConsumerProgress | undefined) => {
    if (until === undefined) return undefined;
    // No consumer yet: the replay has not begun to read. With several consumers under the name, each
    // must have read up to the marker (or have nothing left): the fastest alone said done too soon.
    const passed = (member: { acknowledged: number; pending: number }) => member.acknowledged >= until || member.pending === 0;
    if (progress && (progress.members ?? [progress]).every(passed)) {
      await endReplay(options.db, name);
      return undefined;
    }
    return until;
  };
  // The last failure of each subscriber's transactions, until one commits again: what status reports.
  // `busy`: a saturated connection pool, a busy server rather than a stopped one.
  const faults = new Map<string, { message: string; busy: boolean }>();
  const noteFault = (name: string, error: unknown) =>
    faults.set(name, {
      message: messageOf(error),
      busy: (error as { code?: unknown } | null)?.code === 'storage.busy',
    });
  let running = false;
  let attaching: Promise<void> | undefined;
  let misconfigured: string | undefined;
  // The pauses between attempts to attach: stop() ends them, so a stop is not held up to 10 s by one.
  const pauses = new Set<() => void>();
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const end = () => {
        clearTimeout(timer);
        pauses.delete(end);
        resolve();
      };
      const timer = setTimeout(end, ms);
      pauses.add(end);
    });

  /**
   * Records that the subscriber consumed these events, in one statement: answers those it had not
   * consumed before (a redelivered event already has its row and is left out).
   */
  const claim = async (db: Kysely<object>, subscriber: string, events: readonly RecordedEvent[]): Promise<RecordedEvent[]> => {
    const ids = [...new Set(events.map((event) => event.eventId))];
    const consumedAt = clock.now().toISOString();
    const claimed = new Set<string>();
    for (const piece of rowPieces(db, ids)) {
      const rows = await db
        .withTables<Tables>()
        .insertInto('consumed_events')
        .values(piece.map((eventId) => ({ subscriber, event_id: eventId, consumed_at: consumedAt })))
        .onConflict((oc) => oc.doNothing())
        .returning('event_id')
        .execute();
      for (const row of rows) claimed.add(row.event_id);
    }
    // One handling per event even if the broker handed over the same one twice in this batch.
    return events.filter((event) => claimed.delete(event.eventId));
  };

  /**
   * What the subscriber is handed: the events it has not consumed before, or, when it is idempotent,
   * every event once (a redelivery is folded again, which saves a row per event and subscriber).
   */
  const unconsumed = (db: Kysely<object>, subscriber: Subscriber, events: readonly RecordedEvent[]): Promise<RecordedEvent[]> => {
    if (!subscriber.idempotent) return claim(db, subscriber.name, events);
    const ids = new Set<string>();
    return Promise.resolve(events.filter((event) => !ids.has(event.eventId) && ids.add(event.eventId)));
  };

  const transaction = <T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T> =>
    store.transaction(async (tx) => {
      await options.fence?.(tx.db);
      return work(tx);
    });

  /** Hands the events not consumed yet to the subscriber, claimed in the same transaction. */
  const commit = (subscriber: Subscriber, events: readonly RecordedEvent[]) =>
    transaction(async (tx) => {
      const fresh = await unconsumed(tx.db, subscriber, events);
      if (fresh.length > 0) await subscriber.handle(fresh, tx);
      return fresh.length;
    }).then((count) => options.onConsumed?.(subscriber.name, count));

  /**
   * Group commit for consumers, as the embedded reader does it: the events handed over while one
   * transaction runs wait, in the order the broker delivered them, and go together into the next one.
   * One transaction at a time per subscriber keeps an entity's events in order across transactions,
   * and within one the subscriber folds them in order (two stages of one item cost one write of its
   * view). Each delivery is acknowledged after its commit. If the shared transaction fails, each event
   * is tried alone, so a poison event fails by itself. With `commitIntervalMs`, a transaction starts
   * no sooner than that after the one before it began.
   */
  const grouped = (subscriber: Subscriber) => {
    type Waiting = { event: RecordedEvent; settle(error?: unknown): void };
    let waiting: Waiting[] = [];
    let draining = false;
    let lastStart = -Infinity;
    const flush = async (batch: readonly Waiting[]) => {
      try {
        await commit(
          subscriber,
          batch.map((b) => b.event),
        );
        faults.delete(subscriber.name);
        for (const b of batch) b.settle();
      } catch (error) {
        noteFault(subscriber.name, error);
        // The storage failing fails every event alike: trying each alone would only repeat it.
        if (batch.length === 1 || isStorageFault(error)) {
          for (const b of batch) b.settle(error ?? new Error('handler failed'));
          return;
        }
        for (const b of batch) {
          await commit(subscriber, [b.event]).then(
            () => {
              // The fault shown is the last: one event that fails alone does not hold it for the others.
              faults.delete(subscriber.name);
              b.settle();
            },
            (alone: unknown) => {
              noteFault(subscriber.name, alone);
              b.settle(alone ?? new Error('handler failed'));
            },
          );
        }
      }
    };
    const drain = async () => {
      try {
        while (waiting.length > 0) {
          const wait = lastStart + commitIntervalMs - performance.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          const batch = waiting;
          waiting = [];
          lastStart = performance.now();
          await flush(batch);
        }
      } finally {
        draining = false;
      }
    };
    return (event: RecordedEvent) =>
      new Promise<void>((resolve, reject) => {
        waiting.push({ event, settle: (error) => (error === undefined ? resolve() : reject(error)) });
        if (draining) return;
        draining = true;
        // After this turn's deliveries have joined: they share the first transaction.
        setImmediate(() => void drain());
      });
  };

  // Durable names may not hold '.', '*', '>' or spaces: a subscriber's name is made safe for the broker.
  const durableOf = (subscriber: Subscriber) => `${options.role}-${subscriber.name}`.replace(/[^A-Za-z0-9_-]/g, '_');
  const subscriberOf = (name: string): Subscriber => {
    const subscriber = options.subscribers.find((s) => s.name === name);
    if (!subscriber) {
      throw new NotFoundError(
        'subscriptions.unknown-subscriber',
        `no subscriber named "${name}" (known: ${options.subscribers.map((s) => s.name).join(', ')})`,
      );
    }
    return subscriber;
  };

  /**
   * Consumes the stream again from its first message, with the view thrown away: the durable consumer
   * is forgotten on the broker first, so should the reset then fail, the view is whole and the events
   * consumed again find their consumed rows, and nothing is counted twice. Any replay requested for
   * the subscriber is met by this one. Its consumption must be stopped.
   */
  const startOver = async (subscriber: Subscriber, reset: (tx: StoreTransaction) => Promise<void>) => {
    // The head the rebuild must reach is marked with the reset, in one transaction: a view thrown away
    // without its mark answered incompletely while readiness said all was well.
    const head = await streamHead();
    // Rewound first: should the reset then fail, the view is whole and the events consumed again
    // find their consumed rows, so nothing is counted twice.
    await bus.rewind(durableOf(subscriber));
    await transaction(async (tx) => {
      await reset(tx);
      await tx.db.withTables<Tables>().deleteFrom('consumed_events').where('subscriber', '=', subscriber.name).execute();
      await unparkAll(tx.db, subscriber.name);
      await forgetReplayRequests(tx.db, [subscriber.name]);
      await startReplayCheckpoint(tx.db, subscriber.name, head, clock.now().toISOString());
    });
  };

  /** A replay asked for while the subscriber was not consuming (by a migration): done before it attaches. */
  const replayIfRequested = async (subscriber: Subscriber) => {
    const requests = await replayRequests(options.db, [subscriber.name]);
    if (requests.size === 0) return;
    if (!subscriber.reset) {
      logger.warn(
        { subscriber: subscriber.name, requests: Object.fromEntries(requests) },
        'a replay was requested of a subscriber that keeps no view; ignored',
      );
      return;
    }
    await startOver(subscriber, subscriber.reset);
    logger.info(
      { subscriber: subscriber.name, reasons: [...requests.values()] },
      'replaying from the first message of the stream, as requested',
    );
  };

  const attach = async (subscriber: Subscriber) => {
    const durable = durableOf(subscriber);
    const handleGrouped = grouped(subscriber);
    for (let attempt = 0; running; attempt++) {
      try {
        await replayIfRequested(subscriber);
        const consumption = await bus.consume(
          durable,
          options.subjects ??
            (options.subjectPrefix === undefined
              ? [allSubjectsOf()]
              : subjectsOfSubscriber(subscriber, options.roleOf ?? (() => undefined), options.subjectPrefix)),
          async (message) => {
            if (!subscriber.handles.includes(message.type)) return;
            const event = eventOfMessage(message);
            // Passed over: acknowledged without a transaction or a consumed-event row.
            if (actsOn(subscriber, event)) await handleGrouped(event);
          },
          {
            maxDeliver: options.maxDeliver ?? 5,
            ackWaitMs: options.ackWaitMs ?? 30_000,
            retryDelayMs: options.retryDelayMs ?? 1000,
            // The role's database failing is no event's fault: the event waits it out, never parked for it.
            transient: isStorageFault,
            // Many events in flight, committed together in delivery order (see `grouped`): a transaction
            // holds up to this many events and the next batch is already prefetched.
            concurrency: options.concurrency ?? 256,
            prefetch: options.prefetch ?? 512,
            onLost(reason) {
              // Every replica sees it: each one's attach recreates the durable consumer if it is missing.
              logger.warn({ consumer: durable, reason }, 'the broker lost this consumer; attaching again');
              void reattach(subscriber);
            },
            async onParked(message, error) {
              const event = eventOfMessage(message);
              const reason = messageOf(error);
              await transaction((tx) => parkEvent(tx.db, subscriber.name, event, reason, message.attempt, clock.now().toISOString()));
              // Parked, the event holds the subscriber up no longer: it is running, not retrying.
              faults.delete(subscriber.name);
              logger.error(
                { subscriber: subscriber.name, event_id: event.eventId, event_type: event.type, err: error },
                'event parked after repeated failures',
              );
            },
          },
        );
        consumptions.set(subscriber.name, consumption);
        // A fault of the consumption before (its database lost while the lock was) is not this one's: an
        // event that still fails says so again, and one another replica took meanwhile never would.
        faults.delete(subscriber.name);
        misconfigured = undefined;
        logger.info({ consumer: durable }, 'consuming from the broker');
        return;
      } catch (error) {
        if (error instanceof MessageBusConfigurationError) {
          // Said once: it is reported by readiness until someone changes the configuration.
          if (misconfigured === undefined) logger.error({ consumer: durable, err: error }, 'the broker refuses this configuration');
          misconfigured = error.message;
        } else logger.warn({ consumer: durable, err: error }, 'cannot attach to the broker yet; retrying');
        if (running) await pause(Math.min(500 * 2 ** attempt, 10_000));
      }
    }
  };

  /**
   * Stops a consumption that ended by itself and attaches the subscriber again. A replay on another
   * replica deletes the consumer before it empties the view in a transaction of its own: the pause
   * leaves it that time, so this replica does not recreate the consumer and fill the view in between.
   */
  const reattach = async (subscriber: Subscriber) => {
    const lost = consumptions.get(subscriber.name);
    consumptions.delete(subscriber.name);
    await lost?.stop().catch(() => undefined);
    await pause(REATTACH_PAUSE_MS);
    if (running) attaching = Promise.all([attaching, attach(subscriber)]).then(() => undefined);
  };

  return {
    start() {
      if (running) return;
      running = true;
      attaching = Promise.all(options.subscribers.map(attach)).then(() => undefined);
    },
    async stop() {
      running = false;
      for (const end of [...pauses]) end();
      await attaching;
      await Promise.all([...consumptions.values()].map((c) => c.stop()));
      consumptions.clear();
    },
    attached: () => consumptions.size === options.subscribers.length,
    misconfigured: () => misconfigured,
    faulted: () => [...faults].map(([name, { message, busy }]) => ({ name, fault: message, busy })),

    async status() {
      const statusOf = (name: string) => {
        if (!running || !consumptions.has(name)) return { state: 'stopped' as const };
        const fault = faults.get(name)?.message;
        return fault === undefined ? { state: 'running' as const } : { state: 'retrying' as const, fault };
      };
      const parked = await countParked(options.db);
      const replays = await replaysUnderWay(options.db);
      // The stream's last sequence: a consumer's pending count is of its own subjects only, and its
      // family's, summed, went past the end of the stream as position + lag.
      const last = await bus.head?.().catch(() => undefined);
      return Promise.all(
        options.subscribers.map(async (subscriber) => {
          const progress = await bus.progress(durableOf(subscriber));
          const position = progress?.acknowledged ?? 0;
          const lag = progress?.pending ?? 0;
          const until = await stillReplaying(subscriber.name, replays.get(subscriber.name), progress);
          return {
            name: subscriber.name,
            position,
            head: last === undefined ? position + lag : Math.max(last, position),
            lag,
            parked: parked.get(subscriber.name) ?? 0,
            ...statusOf(subscriber.name),
            ...(until === undefined ? {} : { replayingUntil: until }),
          };
        }),
      );
    },

    async replay(name) {
      const subscriber = subscriberOf(name);
      const reset = subscriber.reset;
      if (!reset) {
        throw new ConflictError(
          'subscriptions.not-replayable',
          `"${name}" records facts rather than keeping a view; replaying it would record them twice`,
        );
      }
      // One at a time: a second reset beside the first replay's rebuilding consumer would leave
      // tables that disagree (PostgreSQL's transactions overlap).
      return oneReplayAtATime(name, async () => {
        // Refused before anything changes while fenced: the durable consumer is the fence holder's too.
        if (options.fence) await transaction(async () => undefined);
        // A consumer still attaching would attach to the durable consumer about to be rewound.
        await attaching;
        await consumptions.get(name)?.stop();
        consumptions.delete(name);
        try {
          await startOver(subscriber, reset);
          logger.info({ subscriber: name }, 'replaying from the first message of the stream');
        } finally {
          // Failed or not (the broker unreachable, say), the subscriber consumes again: never left stopped.
          if (running) attaching = Promise.all([attaching, attach(subscriber)]).then(() => undefined);
        }
      });
    },

    async replaying() {
      const replays = await replaysUnderWay(options.db);
      const found = await Promise.all(
        options.subscribers.map(async ({ name }) => {
          if (!replays.has(name)) return [];
          const progress = await bus.progress(durableOf(subscriberOf(name))).catch(() => undefined);
          const until = await stillReplaying(name, replays.get(name), progress);
          return until === undefined ? [] : [{ name, until }];
        }),
      );
      return found.flat();
    },

    async retryParked(name, ref) {
      const subscriber = subscriberOf(name);
      const parked = await findParked(options.db, name, ref);
      const event = parked?.event;
      if (!parked) throw new NotFoundError('subscriptions.not-parked', `"${name}" has no parked event ${ref}`);
      if (!event)
        throw new ConflictError(
          'subscriptions.unreadable-parked',
          `parked event ${parked.eventId} could not be read when it arrived (${parked.error}): it cannot be handled again; a replay of "${name}" clears it`,
        );
      await retryingParked(
        () =>
          transaction(async (tx) => {
            const fresh = await unconsumed(tx.db, subscriber, [event]);
            if (fresh.length > 0 && subscriber.handles.includes(event.type)) await subscriber.handle(fresh, parkedRetryOf(tx));
            await unpark(tx.db, name, parked.eventId);
          }),
        isStorageFault,
        (error) => transaction((tx) => parkEvent(tx.db, name, event, error, parked.attempts + 1, clock.now().toISOString())),
      );
    },

    async discardParked(name, ref) {
      subscriberOf(name);
      const parked = await findParked(options.db, name, ref);
      if (!parked) throw new NotFoundError('subscriptions.not-parked', `"${name}" has no parked event ${ref}`);
      // The broker had the message acknowledged when it was parked: nothing brings it back.
      await transaction((tx) => unpark(tx.db, name, parked.eventId));
      logger.warn({ subscriber: name, event_id: parked.eventId, error: parked.error }, 'parked event discarded: it will not be handled');
    },

    names: () => options.subscribers.map((s) => s.name),
    replayable: () => options.subscribers.filter((s) => s.reset !== undefined).map((s) => s.name),
  };
}
