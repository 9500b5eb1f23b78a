import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { EventStore } from '../event-store/event-store.js';
import { logFollower } from '../event-store/log-follower.js';
import { loadCheckpoint, saveCheckpoint } from '../subscriptions/checkpoints.js';
import { loadRelayStream, saveRelayStream } from './bus-binding.js';
import { messageOfEvent, subjectOf } from './event-messages.js';
import { MessageBusConfigurationError, MessageBusUnavailableError, type MessageBus } from './message-bus.js';
import { messageOf } from '../errors.js';

export interface OutboxRelayOptions {
  readonly store: EventStore;
  /** Holds the relay's checkpoint, in the subscriptions' checkpoint table. */
  readonly db: Kysely<object>;
  readonly bus: MessageBus;
  /** The service's bounded context: its events go to `<subjectPrefix>.<context>.<EventType>`. */
  readonly context: string;
  /** The deployment's subject prefix. Default `intake`. */
  readonly subjectPrefix?: string;
  readonly clock: Clock;
  readonly logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** The checkpoint's name. Default `relay`. */
  readonly name?: string;
  readonly batchSize?: number;
  /** Fallback when no commit signal arrives. */
  readonly pollIntervalMs?: number;
  /** Backoff while the broker is unreachable: doubles from the base up to the cap. */
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
  /**
   * Least time between two checkpoint writes (default 1000). A checkpoint only bounds what a restart
   * publishes again, which the broker and the consumers drop: writing one after every batch made each
   * event cost a commit of its own whenever events came one at a time.
   */
  readonly checkpointIntervalMs?: number;
}

export interface OutboxRelay {
  start(): void;
  /** Finishes the batch in hand and saves the checkpoint; what was not acknowledged is published again by the next start. */
  stop(): Promise<void>;
  /** The position of the last event the broker acknowledged. */
  readonly position: number;
  /** Why its last attempt to publish failed, while it retries; undefined once it publishes again. */
  readonly failing: string | undefined;
  /** Whether that failure is the broker's (unreachable, refusing), not the log's: readiness tells them apart. */
  readonly failingOnBroker: boolean;
  /** While it publishes its log again into a stream the broker made anew (its data lost), what it is doing. */
  readonly republishing: string | undefined;
}

/**
 * Publishes a service's events to the broker: the event store is the outbox. It reads the log after its
 * checkpoint, publishes each event with its id as the message id, and moves the checkpoint only once the
 * broker acknowledged them all, so a crash or an outage republishes (deduplicated by the broker within its
 * window, and by idempotent consumers beyond it) and never skips. It runs beside the write path and
 * never holds it up: while the broker is down, appends go on and the relay retries with backoff.
 */
export function outboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const { store, db, bus, context, clock, logger } = options;
  const name = options.name ?? 'relay';
  const batchSize = options.batchSize ?? 1000;
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  const retryBaseMs = options.retryBaseMs ?? 100;
  const retryMaxMs = options.retryMaxMs ?? 30_000;
  const checkpointIntervalMs = options.checkpointIntervalMs ?? 1000;
  let position = 0;
  let failing: string | undefined;
  let failingOnBroker = false;
  /** When the stream the checkpoint counts in was made; and, while publishing again, up to where. */
  let stream: string | undefined;
  let republishUpTo: number | undefined;
  const follower = logFollower(pollIntervalMs);
  let running = false;
  let loop: Promise<void> | undefined;
  let unsubscribe: (() => void) | undefined;
  let stopListening: (() => void) | undefined;
  /** Ends the current pause early; `wakesOnAppend` tells a wait for news from a backoff after a failure. */
  let pausing: { readonly wakesOnAppend: boolean; end(): void } | undefined;

  const pause = (ms: number, wakesOnAppend: boolean) =>
    new Promise<void>((resolve) => {
      // Stopped while it read: stop() found no pause to end, and none may begin.
      if (!running) return resolve();
      const end = () => {
        clearTimeout(timer);
        pausing = undefined;
        resolve();
      };
      const timer = setTimeout(end, ms);
      pausing = { wakesOnAppend, end };
    });

  /** The checkpoint write in flight, the newest position waiting for the next one, and when the last began. */
  let checkpointing: Promise<void> | undefined;
  let unsaved: number | undefined;
  let savedAt = -Infinity;
  /** Ends the spacing before the next write, so that stop() saves at once. */
  let hurry: (() => void) | undefined;

  const spacing = (ms: number) =>
    new Promise<void>((resolve) => {
      const end = () => {
        clearTimeout(timer);
        hurry = undefined;
        resolve();
      };
      const timer = setTimeout(end, ms);
      hurry = end;
    });

  /**
   * Saves the checkpoint without holding up the next batch, and at most once per interval while
   * events keep coming (see `checkpointIntervalMs`); stop() saves the newest position at once. Writes
   * stay in order: one at a time, the newest position going next.
   */
  const checkpointSoon = (at: number) => {
    unsaved = at;
    checkpointing ??= (async () => {
      while (unsaved !== undefined) {
        const wait = savedAt + checkpointIntervalMs - performance.now();
        if (wait > 0 && running) await spacing(wait);
        const next = unsaved;
        unsaved = undefined;
        savedAt = performance.now();
        try {
          await saveCheckpoint(db, name, next, clock.now().toISOString());
        } catch (error) {
          logger.warn({ relay: name, position: next, err: error }, 'relay cannot save its checkpoint; a restart publishes more again');
        }
      }
      checkpointing = undefined;
    })();
  };

  /**
   * One step: publishes the next batch. Answers whether the log may hold more right now: a full batch
   * says so; a shorter one read all there was, and what committed since is announced (the follower
   * keeps it), so the relay waits rather than spend a read on finding nothing.
   */
  const relayBatch = async (): Promise<boolean> => {
    // Named, so that the store's in-memory tail keeps what the relay has yet to publish.
    const batch = await store.readAll({ after: position, limit: batchSize, reader: name });
    follower.read(batch);
    const last = batch.at(-1);
    if (!last) {
      await republishedUpTo(position);
      return false;
    }
    // All in flight at once: one connection keeps them in order, and one round trip covers the batch.
    await Promise.all(batch.map((event) => bus.publish(subjectOf(context, event.type, options.subjectPrefix), messageOfEvent(event))));
    position = last.position;
    checkpointSoon(last.position);
    await republishedUpTo(position);
    return batch.length === batchSize;
  };

  /** Once the relay has published its log again as far as it held when the stream was made anew. */
  const republishedUpTo = async (at: number) => {
    if (republishUpTo === undefined || at < republishUpTo) return;
    republishUpTo = undefined;
    await saveRelayStream(db, name, { created: stream, republishUntil: undefined });
    logger.info({ relay: name, position: at }, 'relay has published its log again into the new stream');
  };

  /**
   * A stream made anew holds none of what was published before: the checkpoint goes back to the start,
   * and the whole log is published again (consumers drop what they had consumed, by event id). Left
   * as it was, the events acknowledged before the loss never reached the roles that had not read them.
   */
  const followStream = async () => {
    const created = bus.streamCreated?.();
    if (created === undefined || created === stream) return;
    const head = await store.headPosition();
    // A log with nothing in it (a role that only consumes) has nothing to publish again.
    if (stream !== undefined && head > 0) {
      republishUpTo = head;
      logger.error(
        { relay: name, stream_was_created: stream, stream_created: created, events: head },
        'the broker made the stream anew, without the messages published before (its data lost?): publishing the log again from the start',
      );
      position = 0;
      // A write of the old position still in flight must not land after this one.
      unsaved = undefined;
      hurry?.();
      await checkpointing;
      await saveCheckpoint(db, name, 0, clock.now().toISOString());
    }
    stream = created;
    await saveRelayStream(db, name, { created, republishUntil: republishUpTo });
  };

  const run = async () => {
    let failures = 0;
    let loaded = false;
    while (running) {
      try {
        if (!loaded) {
          position = await loadCheckpoint(db, name);
          ({ created: stream, republishUntil: republishUpTo } = await loadRelayStream(db, name));
          loaded = true;
        }
        await followStream();
        const more = await relayBatch();
        if (failures > 0) logger.info({ relay: name, position, failures }, 'relay publishing again');
        failures = 0;
        failing = undefined;
        failingOnBroker = false;
        if (!more) await pause(follower.idleWaitMs(), true);
      } catch (error) {
        failures += 1;
        failing = messageOf(error);
        failingOnBroker = error instanceof MessageBusUnavailableError || error instanceof MessageBusConfigurationError;
        // Said once, then every tenth attempt: an outage must be visible without flooding the log.
        if (failures === 1 || failures % 10 === 0)
          logger.warn({ relay: name, position, failures, err: error }, 'relay cannot publish; retrying');
        if (running) await pause(Math.min(retryBaseMs * 2 ** (failures - 1), retryMaxMs), false);
      }
    }
  };

  return {
    start() {
      if (running) return;
      running = true;
      // New events end a wait for news, not the backoff after a failure: an outage is not hammered.
      unsubscribe = store.onAppended((head) => {
        follower.announced(head);
        if (pausing?.wakesOnAppend) pausing.end();
      });
      // A broker back from an outage ends the backoff: events would otherwise wait up to retryMaxMs more.
      stopListening = bus.onReachable?.(() => {
        if (failingOnBroker && pausing && !pausing.wakesOnAppend) pausing.end();
      });
      loop = run();
    },

    async stop() {
      running = false;
      unsubscribe?.();
      unsubscribe = undefined;
      stopListening?.();
      stopListening = undefined;
      pausing?.end();
      await loop;
      hurry?.();
      await checkpointing;
      loop = undefined;
    },

    get position() {
      return position;
    },

    get republishing() {
      return republishUpTo === undefined
        ? undefined
        : `the broker made the stream anew (its data lost): publishing this role's log again, at ${position} of ${republishUpTo}`;
    },

    get failing() {
      return failing;
    },

    get failingOnBroker() {
      return failingOnBroker;
    },
  };
}
