import { systemClock, type Clock } from '../../clock.js';
import { handleDelivery, type Settlement } from '../handle-delivery.js';
import {
  MessageBusUnavailableError,
  type BusMessage,
  type ConsumeOptions,
  type Consumption,
  type MessageBus,
  type MessageHandler,
} from '../message-bus.js';
import { subjectMatches } from '../subject-matches.js';

export interface InProcessMessageBusOptions {
  /** How long a message id is remembered to drop a second publish of it. Default two minutes, like JetStream's. */
  readonly duplicateWindowMs?: number;
  readonly clock?: Clock;
}

interface Stored {
  readonly seq: number;
  readonly subject: string;
  readonly message: BusMessage;
}

interface Unacknowledged {
  /** The highest attempt handed out or scheduled so far. */
  deliveries: number;
  redeliveryScheduled: boolean;
}

interface Delivery {
  readonly stored: Stored;
  readonly attempt: number;
}

/** A named consumer's progress; it outlives the consumers attached to it, like a durable JetStream consumer. */
interface Durable {
  subjects: readonly string[];
  /** Index in the log of the first message never delivered. */
  next: number;
  readonly unacknowledged: Map<number, Unacknowledged>;
  readonly due: Delivery[];
  readonly waiters: Set<() => void>;
}

/**
 * The bus inside one process, with JetStream's semantics: a log of messages, durable consumers
 * sharing work between their consumers, acknowledgement after the handler, redelivery after a failure
 * or an ack wait that ran out, parking after `maxDeliver` attempts, and id-based deduplication.
 * For the embedded mode and for tests of code that consumes.
 */
export function inProcessMessageBus(options: InProcessMessageBusOptions = {}): MessageBus {
  const clock = options.clock ?? systemClock;
  const duplicateWindowMs = options.duplicateWindowMs ?? 120_000;
  const log: Stored[] = [];
  const publishedAt = new Map<string, number>();
  const durables = new Map<string, Durable>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const consumptions = new Set<Consumption>();
  let closed = false;

  const later = (ms: number, action: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      action();
    }, ms);
    timers.add(timer);
    return timer;
  };

  const wake = (durable: Durable) => {
    const waiters = [...durable.waiters];
    durable.waiters.clear();
    for (const resume of waiters) resume();
  };

  const isDuplicate = (id: string): boolean => {
    const now = clock.now().getTime();
    // Ids are kept in publish order: forget the expired ones from the oldest on.
    for (const [oldId, at] of publishedAt) {
      if (now - at < duplicateWindowMs) break;
      publishedAt.delete(oldId);
    }
    if (publishedAt.has(id)) return true;
    publishedAt.set(id, now);
    return false;
  };

  const scheduleRedelivery = (durable: Durable, stored: Stored, afterMs: number) => {
    const state = durable.unacknowledged.get(stored.seq);
    if (!state || state.redeliveryScheduled) return;
    state.redeliveryScheduled = true;
    later(afterMs, () => {
      state.redeliveryScheduled = false;
      if (!durable.unacknowledged.has(stored.seq)) return;
      state.deliveries += 1;
      durable.due.push({ stored, attempt: state.deliveries });
      wake(durable);
    });
  };

  const take = (durable: Durable): Delivery | undefined => {
    const due = durable.due.shift();
    if (due) return due;
    while (durable.next < log.length) {
      const stored = log[durable.next] as Stored;
      durable.next += 1;
      if (durable.subjects.some((pattern) => subjectMatches(pattern, stored.subject))) {
        durable.unacknowledged.set(stored.seq, { deliveries: 1, redeliveryScheduled: false });
        return { stored, attempt: 1 };
      }
    }
    return undefined;
  };

  const deliver = async (
    durable: Durable,
    delivery: Delivery,
    handler: MessageHandler,
    consume: ConsumeOptions,
    stopping: () => boolean,
  ) => {
    const { stored, attempt } = delivery;
    const state = durable.unacknowledged.get(stored.seq);
    // The ack wait runs while the handler does: past it, the message is handed out again.
    const startAckWait = () =>
      later(consume.ackWaitMs, () => {
        if (state?.deliveries === attempt) scheduleRedelivery(durable, stored, 0);
      });
    let ackWait = startAckWait();
    const settlement: Settlement = await handleDelivery({ ...stored.message, subject: stored.subject, attempt }, handler, consume, {
      working() {
        clearTimeout(ackWait);
        timers.delete(ackWait);
        ackWait = startAckWait();
      },
      stopping,
    });
    clearTimeout(ackWait);
    timers.delete(ackWait);
    if (settlement.kind === 'ack') durable.unacknowledged.delete(stored.seq);
    // A failure of a delivery that is no longer the latest one changes nothing: the latest decides.
    else if (state?.deliveries === attempt) scheduleRedelivery(durable, stored, settlement.delayMs);
  };

  return {
    async publish(subject, message) {
      if (closed) throw new MessageBusUnavailableError('the bus is closed');
      if (isDuplicate(message.id)) return;
      // Through JSON, as over the wire: consumers never share the publisher's objects.
      log.push({ seq: log.length + 1, subject, message: JSON.parse(JSON.stringify(message)) as BusMessage });
      for (const durable of durables.values()) wake(durable);
    },

    async consume(durableName, subjects, handler, consume) {
      if (closed) throw new MessageBusUnavailableError('the bus is closed');
      let durable = durables.get(durableName);
      if (!durable) {
        durable = { subjects, next: 0, unacknowledged: new Map(), due: [], waiters: new Set() };
        durables.set(durableName, durable);
      }
      durable.subjects = subjects;
      const attached = durable;
      let running = true;
      const loop = (async () => {
        while (running) {
          const delivery = take(attached);
          if (delivery) await deliver(attached, delivery, handler, consume, () => !running || closed);
          else await new Promise<void>((resume) => attached.waiters.add(resume));
        }
      })();
      const consumption: Consumption = {
        async stop() {
          running = false;
          wake(attached);
          await loop;
          consumptions.delete(consumption);
        },
      };
      consumptions.add(consumption);
      return consumption;
    },

    async progress(durableName) {
      const durable = durables.get(durableName);
      if (!durable) return undefined;
      const selected = (from: number, to: number) =>
        log.slice(from, to).filter((stored) => durable.subjects.some((pattern) => subjectMatches(pattern, stored.subject))).length;
      const pending = durable.unacknowledged.size + selected(durable.next, log.length);
      return { acknowledged: selected(0, durable.next) - durable.unacknowledged.size, pending };
    },

    async rewind(durableName) {
      durables.delete(durableName);
    },

    async close() {
      closed = true;
      await Promise.all([...consumptions].map((c) => c.stop()));
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    },
  };
}
