import type { ConsumeOptions, DeliveredMessage, MessageHandler } from './message-bus.js';

/** How a delivery ends: acknowledged (handled or parked), or handed back for a later attempt. */
export type Settlement = { readonly kind: 'ack' } | { readonly kind: 'retry'; readonly delayMs: number };

const ACK: Settlement = { kind: 'ack' };

/**
 * One delivery, the same way for every adapter: the handler runs first and the message is
 * acknowledged only after it resolved; a failure is retried with a growing delay until the
 * `maxDeliver`th attempt, which parks the message instead.
 */
export async function handleDelivery(message: DeliveredMessage, handler: MessageHandler, options: ConsumeOptions): Promise<Settlement> {
  // Earlier deliveries ended without an answer (a crashed replica, an ack wait that ran out).
  if (message.attempt > options.maxDeliver) return park(message, notAcknowledged(message.attempt - 1), options);
  try {
    await handler(message);
    return ACK;
  } catch (error) {
    if (message.attempt >= options.maxDeliver) return park(message, error, options);
    return retry(message, options);
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

function notAcknowledged(deliveries: number): Error {
  return new Error(`not acknowledged after ${deliveries} deliveries: the handler crashed or outlasted its ack wait`);
}
