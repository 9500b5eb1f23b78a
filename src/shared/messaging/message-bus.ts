import { UnavailableError } from '../errors.js';
import type { EventMetadata } from '../events.js';

/** What travels between services: an event's envelope, identified for deduplication by `id`. */
export interface BusMessage {
  /** The event id: the broker drops a second publish of the same id within its duplicate window. */
  readonly id: string;
  readonly type: string;
  readonly data: object;
  readonly metadata: EventMetadata;
}

export interface DeliveredMessage extends BusMessage {
  readonly subject: string;
  /** 1 on the first delivery; higher after a failure or an ack wait that ran out. */
  readonly attempt: number;
}

/** Resolves once the message's effects are committed: only then is it acknowledged. */
export type MessageHandler = (message: DeliveredMessage) => Promise<void>;

export interface ConsumeOptions {
  /** Deliveries of one message before it is parked instead of retried. */
  readonly maxDeliver: number;
  /** A delivery not acknowledged within this time is delivered again. */
  readonly ackWaitMs: number;
  /** The dead-letter path: receives a message that exhausted its deliveries; the message is then settled. */
  onParked(message: DeliveredMessage, error: unknown): Promise<void>;
  /**
   * Failures that are no fault of the message (the consumer's storage is down): the message is kept
   * in hand and tried again with growing pauses until it passes, never parked for them, and they
   * do not count as deliveries.
   */
  readonly transient?: (error: unknown) => boolean;
  /**
   * The consumption ended by itself: its durable consumer (or the stream) is gone from the broker, by
   * a deletion or a broker that lost its data. Messages no longer come; the owner attaches again.
   */
  readonly onLost?: (reason: string) => void;
  /** Delay before the first redelivery after a failure, doubling with each attempt. Default 1000. */
  readonly retryDelayMs?: number;
  /** Messages a consumer may hold before handling them. Default 64; 1 shares work most evenly. */
  readonly prefetch?: number;
  /**
   * Messages handled at once (default 1). Messages with the same key are still handled one after the
   * other, in the order they arrived; give a key when handlers of one entity must not overlap.
   */
  readonly concurrency?: number;
  readonly keyOf?: (message: DeliveredMessage) => string;
}

/** How far a durable consumer got through the messages its subjects select. */
export interface ConsumerProgress {
  /** Grows as messages are acknowledged (JetStream: the ack floor's stream sequence); only its changes mean something. */
  readonly acknowledged: number;
  /** Messages not yet acknowledged: never delivered, or delivered and awaiting their acknowledgement. */
  readonly pending: number;
  /**
   * Where the broker keeps one durable name as several consumers (JetStream 2.9: one per publishing
   * role), each one's progress: the others may be far behind the one that leads.
   */
  readonly members?: ReadonlyArray<{ readonly acknowledged: number; readonly pending: number }>;
}

export interface Consumption {
  /** Finishes the message in hand; messages not yet handled go back to the durable consumer. */
  stop(): Promise<void>;
}

/**
 * The broker seen from a service: at-least-once delivery to durable, named consumers.
 * Replicas consuming under one durable name share its messages; each is handled once unless a
 * handler fails or a replica dies, so handlers stay idempotent on the message id.
 */
export interface MessageBus {
  /** Resolves when the broker has stored the message; rejects with `MessageBusUnavailableError` when it cannot. */
  publish(subject: string, message: BusMessage): Promise<void>;
  /** `subjects` may use NATS wildcards: `*` for one token, `>` for the rest. */
  consume(durableName: string, subjects: readonly string[], handler: MessageHandler, options: ConsumeOptions): Promise<Consumption>;
  /** A durable consumer's progress, or undefined when none of that name exists. */
  progress(durableName: string): Promise<ConsumerProgress | undefined>;
  /**
   * Forgets a durable consumer, so the next `consume` under its name starts again from the first
   * message the broker holds: the way to rebuild a view from the stream. Stop its consumptions first.
   */
  rewind(durableName: string): Promise<void>;
  /** The position of the last message the stream holds (JetStream: its last sequence), when the broker tells it. */
  head?(): Promise<number>;
  /**
   * When the stream was made, as the broker last said (undefined before it has said): a stream made
   * again (a broker restarted without its data) has a new time, and lacks every message published before.
   */
  streamCreated?(): string | undefined;
  /** Why the broker cannot be reached now (never connected, disconnected, closed), or undefined while it can. */
  unreachable?(): string | undefined;
  /**
   * Calls `listener` each time the broker can be reached again after it could not (a reconnect, a first
   * connection after failed ones); answers the way to stop listening.
   */
  onReachable?(listener: () => void): () => void;
  /** Why the broker refused this bus's configuration, for good (see MessageBusConfigurationError), or undefined. */
  misconfigured?(): string | undefined;
  /** Resolves once the broker has taken this bus's configuration (its stream) as this deployment's. */
  accepted?(): Promise<void>;
  close(): Promise<void>;
}

/** The broker refuses this bus's configuration (for example its stream's subjects overlap another's): retrying will not help. */
export class MessageBusConfigurationError extends Error {}

export class MessageBusUnavailableError extends UnavailableError {
  constructor(reason: string) {
    super('messaging.unavailable', `the message broker is unavailable: ${reason}`, 1);
  }
}
