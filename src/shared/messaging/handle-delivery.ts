import type { ConsumeOptions, DeliveredMessage, MessageHandler } from './message-bus.js';

/** How a delivery ends: acknowledged (handled or parked), or handed back for a later attempt. */
export type Settlement = { readonly kind: 'ack' } | { readonly kind: 'retry'; readonly delayMs: number };

/** What an adapter lets the delivery do while it holds a message through a transient failure. */
export interface DeliveryControl {
  /** Tells the broker the message is still in hand, so its ack wait starts over. */
  working(): void;
  /** Whether the consumption is stopping: a message held then is handed back instead. */
  stopping(): boolean;
}

const ACK: Settlement = { kind: 'ack' };

/**
 * One delivery, the same way for every adapter: the handler runs first and the message is
 * acknowledged only after it resolved; a failure is retried with a growing delay until the
 * `maxDeliver`th attempt, which parks the message instead.
 *
 * A failure `options.transient` recognises (the consumer's own storage is down) is no fault of the
 * message: it is never parked for it. The message stays in hand and is tried again with growing
 * pauses until the fault clears, so an outage does not spend its deliveries either; when the
 * consumption stops meanwhile, it goes back to the broker.
 */
export async function handleDelivery(
  message: DeliveredMessage,
  handler: MessageHandler,
  options: ConsumeOptions,
  control?: DeliveryControl,
): Promise<Settlement> {
  // Earlier deliveries ended without an answer (a crashed replica, an ack wait that ran out).
  if (message.attempt > options.maxDeliver) return park(message, notAcknowledged(message.attempt - 1), options);
  for (let held = 0; ; held++) {
    try {
      await handler(message);
      return ACK;
    } catch (error) {
      if (options.transient?.(error)) {
        if (!control || control.stopping()) return retry(message, options);
        await sleep(holdPause(held, options));
        if (control.stopping()) return retry(message, options);
        control.working();
        continue;
      }
      if (message.attempt >= options.maxDeliver) return park(message, error, options);
      return retry(message, options);
    }
  }
}

/** Hands a message to the dead-letter path; it stays on the bus if that path fails too. */
export async function park(message: DeliveredMessage, error: unknown, options: ConsumeOptions): Promise<Settlement> {
  try {
    await options.onParked(message, error);
    return ACK;
  } catch {
    // The dead-letter path failed as well: keep the message rather than lose it.
    return retry(message, options);
  }
}

function retry(message: DeliveredMessage, options: ConsumeOptions): Settlement {
  const base = options.retryDelayMs ?? 1000;
  return { kind: 'retry', delayMs: Math.min(base * 2 ** (message.attempt - 1), 60_000) };
}

/** The pause before trying a held message again: growing, and short enough to renew the ack wait in time. */
function holdPause(held: number, options: ConsumeOptions): number {
  const base = options.retryDelayMs ?? 1000;
  return Math.max(1, Math.min(base * 2 ** Math.min(held, 16), MAX_HOLD_PAUSE_MS, options.ackWaitMs / 3));
}

// The longest pause between two tries of a held message: a cleared fault is noticed this fast.
const MAX_HOLD_PAUSE_MS = 5000;

function notAcknowledged(deliveries: number): Error {
  return new Error(`not acknowledged after ${deliveries} deliveries: the handler crashed or outlasted its ack wait`);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
