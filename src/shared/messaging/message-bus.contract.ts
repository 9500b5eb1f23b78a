import { describe, expect, it } from 'vitest';
import type { BusMessage, ConsumeOptions, DeliveredMessage, MessageBus } from './message-bus.js';

export interface MessageBusFixture {
  readonly bus: MessageBus;
  /** A subject prefix no other test uses. */
  readonly prefix: string;
  close(): Promise<void>;
}

const message = (id: string, n = 0): BusMessage => ({ id, type: 'Thing', data: { n }, metadata: { correlationId: `c-${id}` } });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(10);
  }
}

interface Parked {
  readonly message: DeliveredMessage;
  readonly error: unknown;
}

function consumeOptions(parked: Parked[] = [], overrides: Partial<ConsumeOptions> = {}): ConsumeOptions {
  return {
    maxDeliver: 3,
    ackWaitMs: 5000,
    retryDelayMs: 20,
    onParked: async (m, error) => {
      parked.push({ message: m, error });
    },
    ...overrides,
  };
}

/** One behavioural suite for every MessageBus adapter. */
export function messageBusContract(name: string, create: () => Promise<MessageBusFixture>): void {
  const withBus = async (test: (f: MessageBusFixture) => Promise<void>) => {
    const fixture = await create();
    try {
      await test(fixture);
    } finally {
      await fixture.close();
    }
  };

  describe(`MessageBus contract: ${name}`, () => {
    it('delivers what was published to a durable consumer, with its subject and first attempt', () =>
      withBus(async ({ bus, prefix }) => {
        const received: DeliveredMessage[] = [];
        await bus.consume('reader', [`${prefix}.>`], async (m) => void received.push(m), consumeOptions());
        await bus.publish(`${prefix}.things.Thing`, message('m-1', 1));
        await bus.publish(`${prefix}.things.Thing`, message('m-2', 2));
        await eventually(() => received.length === 2, 'both messages arrived');
        expect(received).toEqual([
          { ...message('m-1', 1), subject: `${prefix}.things.Thing`, attempt: 1 },
          { ...message('m-2', 2), subject: `${prefix}.things.Thing`, attempt: 1 },
        ]);
      }));

    it('tells what a durable consumer has left, and once rewound delivers from the first message again', () =>
      withBus(async ({ bus, prefix }) => {
        expect(await bus.progress('rewound')).toBeUndefined();
        const received: string[] = [];
        const handler = async (m: DeliveredMessage) => void received.push(m.id);
        let consumption = await bus.consume('rewound', [`${prefix}.>`], handler, consumeOptions());
        for (const id of ['r-1', 'r-2', 'r-3']) await bus.publish(`${prefix}.things.Thing`, message(id));
        await eventually(() => received.length === 3, 'three messages arrived');
        await consumption.stop();
        await bus.publish(`${prefix}.things.Thing`, message('r-4'));
        // Acknowledgements travel after the handler: wait for the broker to count them.
        const deadline = Date.now() + 5000;
        while ((await bus.progress('rewound'))?.pending !== 1 && Date.now() < deadline) await sleep(20);
        expect((await bus.progress('rewound'))?.pending).toBe(1);

        await bus.rewind('rewound');
        expect(await bus.progress('rewound')).toBeUndefined();
        received.length = 0;
        consumption = await bus.consume('rewound', [`${prefix}.>`], handler, consumeOptions());
        await eventually(() => received.length === 4, 'all four messages arrived again');
        expect(received).toEqual(['r-1', 'r-2', 'r-3', 'r-4']);
        await consumption.stop();
      }));

    it('delivers only the subjects of a consumer that asked for several', () =>
      withBus(async ({ bus, prefix }) => {
        const received: string[] = [];
        await bus.consume('several', [`${prefix}.*.Wanted`, `${prefix}.*.Also`], async (m) => void received.push(m.id), consumeOptions());
        await bus.publish(`${prefix}.a.Other`, message('other'));
        await bus.publish(`${prefix}.a.Wanted`, message('wanted'));
        await bus.publish(`${prefix}.b.Also`, message('also'));
        await eventually(() => received.length === 2, 'both wanted messages arrived');
        await sleep(100);
        expect(received).toEqual(['wanted', 'also']);
      }));

    it('only delivers the subjects a consumer asked for', () =>
      withBus(async ({ bus, prefix }) => {
        const received: string[] = [];
        await bus.consume('picky', [`${prefix}.wanted.*`], async (m) => void received.push(m.id), consumeOptions());
        await bus.publish(`${prefix}.unwanted.Thing`, message('no'));
        await bus.publish(`${prefix}.wanted.Thing`, message('yes'));
        await eventually(() => received.length === 1, 'the wanted message arrived');
        await sleep(100);
        expect(received).toEqual(['yes']);
      }));

    it('acknowledges only once the handler resolved: one outlasting its ack wait gets the message again', () =>
      withBus(async ({ bus, prefix }) => {
        const attempts: number[] = [];
        await bus.consume(
          'slow',
          [`${prefix}.>`],
          async (m) => {
            attempts.push(m.attempt);
            if (m.attempt === 1) await sleep(750);
          },
          consumeOptions([], { ackWaitMs: 500 }),
        );
        await bus.publish(`${prefix}.things.Thing`, message('slow-1'));
        await eventually(() => attempts.length >= 2, 'the message was delivered again', 5000);
        expect(attempts.slice(0, 2)).toEqual([1, 2]);
      }));

    it('redelivers a message whose handler failed, and acknowledges it once handled', () =>
      withBus(async ({ bus, prefix }) => {
        const attempts: number[] = [];
        const parked: Parked[] = [];
        let handled = false;
        await bus.consume(
          'flaky',
          [`${prefix}.>`],
          async (m) => {
            attempts.push(m.attempt);
            if (m.attempt === 1) throw new Error('transient');
            handled = true;
          },
          consumeOptions(parked),
        );
        await bus.publish(`${prefix}.things.Thing`, message('f-1'));
        await eventually(() => handled, 'the retry succeeded');
        await sleep(200);
        expect(attempts).toEqual([1, 2]);
        expect(parked).toEqual([]);
      }));

    it('parks a message after maxDeliver failed attempts and carries on with the next', () =>
      withBus(async ({ bus, prefix }) => {
        const attempts: number[] = [];
        const parked: Parked[] = [];
        const handled: string[] = [];
        await bus.consume(
          'strict',
          [`${prefix}.>`],
          async (m) => {
            if (m.id === 'poison') {
              attempts.push(m.attempt);
              throw new Error(`cannot handle ${m.id}`);
            }
            handled.push(m.id);
          },
          consumeOptions(parked, { maxDeliver: 3 }),
        );
        await bus.publish(`${prefix}.things.Thing`, message('poison'));
        await bus.publish(`${prefix}.things.Thing`, message('fine'));
        await eventually(() => parked.length === 1 && handled.length === 1, 'the poison was parked and the next handled');
        await sleep(300);
        expect(attempts).toEqual([1, 2, 3]);
        expect(parked).toHaveLength(1);
        expect(parked[0]?.message).toMatchObject({ id: 'poison', attempt: 3 });
        expect(String(parked[0]?.error)).toContain('cannot handle poison');
        expect(handled).toEqual(['fine']);
      }));

    it('holds a message through transient failures, however long they last, and never parks it for them', () =>
      withBus(async ({ bus, prefix }) => {
        const attempts: number[] = [];
        const parked: Parked[] = [];
        const handled: string[] = [];
        let outage = true;
        await bus.consume(
          'patient',
          [`${prefix}.>`],
          async (m) => {
            if (outage) {
              attempts.push(m.attempt);
              throw Object.assign(new Error('storage is down'), { transient: true });
            }
            handled.push(`${m.id}@${m.attempt}`);
          },
          consumeOptions(parked, {
            maxDeliver: 2,
            // Past the ack wait too: the message stays in hand rather than being delivered again.
            ackWaitMs: 1000,
            transient: (error) => (error as { transient?: boolean }).transient === true,
          }),
        );
        await bus.publish(`${prefix}.things.Thing`, message('outlasting'));
        await eventually(() => attempts.length >= 6, 'many tries during the outage', 20_000);
        await sleep(1200);
        outage = false;
        await eventually(() => handled.length === 1, 'handled once the outage ended', 10_000);
        await sleep(300);
        expect(parked).toEqual([]);
        // Every try was the first delivery: none of them counted against maxDeliver.
        expect(new Set(attempts)).toEqual(new Set([1]));
        expect(handled).toEqual(['outlasting@1']);
      }));

    it('drops a second publish of the same message id', () =>
      withBus(async ({ bus, prefix }) => {
        const received: string[] = [];
        await bus.publish(`${prefix}.things.Thing`, message('once', 1));
        await bus.publish(`${prefix}.things.Thing`, message('once', 2));
        await bus.publish(`${prefix}.things.Thing`, message('after'));
        await bus.consume('dedup', [`${prefix}.>`], async (m) => void received.push(m.id), consumeOptions());
        await eventually(() => received.includes('after'), 'the last message arrived');
        await sleep(100);
        expect(received).toEqual(['once', 'after']);
      }));

    it('shares one durable consumer between its consumers: each message is handled once overall', () =>
      withBus(async ({ bus, prefix }) => {
        const byConsumer: Record<'a' | 'b', string[]> = { a: [], b: [] };
        const handler = (who: 'a' | 'b') => async (m: DeliveredMessage) => {
          byConsumer[who].push(m.id);
          await sleep(5);
        };
        await bus.consume('shared', [`${prefix}.>`], handler('a'), consumeOptions([], { prefetch: 1 }));
        await bus.consume('shared', [`${prefix}.>`], handler('b'), consumeOptions([], { prefetch: 1 }));
        for (let i = 0; i < 30; i++) await bus.publish(`${prefix}.things.Thing`, message(`s-${i}`, i));
        const all = () => [...byConsumer.a, ...byConsumer.b];
        await eventually(() => all().length >= 30, 'every message was handled');
        await sleep(200);
        expect(all().length).toBe(30);
        expect(new Set(all()).size).toBe(30);
        expect(byConsumer.a.length).toBeGreaterThan(0);
        expect(byConsumer.b.length).toBeGreaterThan(0);
      }));

    it('resumes a durable consumer after a restart without loss or repeats', () =>
      withBus(async ({ bus, prefix }) => {
        const received: string[] = [];
        const handler = async (m: DeliveredMessage) => void received.push(m.id);
        const first = await bus.consume('restartable', [`${prefix}.>`], handler, consumeOptions());
        for (let i = 0; i < 5; i++) await bus.publish(`${prefix}.things.Thing`, message(`r-${i}`));
        await eventually(() => received.length === 5, 'the first five arrived');
        await first.stop();
        for (let i = 5; i < 10; i++) await bus.publish(`${prefix}.things.Thing`, message(`r-${i}`));
        await sleep(100);
        expect(received.length).toBe(5);
        await bus.consume('restartable', [`${prefix}.>`], handler, consumeOptions());
        await eventually(() => received.length >= 10, 'the rest arrived after the restart');
        await sleep(100);
        expect(received).toEqual(Array.from({ length: 10 }, (_, i) => `r-${i}`));
      }));
  });
}
