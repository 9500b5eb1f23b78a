import type { Kysely } from 'kysely';
import { describe, expect, it } from 'vitest';
import { fixedClock } from '../shared/clock.js';
import type { EventStore, ReadAllOptions, StoreTransaction } from '../shared/event-store/event-store.js';
import type { RecordedEvent } from '../shared/events.js';
import { eventStoreItems } from './adapters/log/event-store-items.js';
import type { ReplayJob, StoredRule } from './application/ports.js';
import { replayRunner, type ReplayDeps } from './application/replay-jobs.js';

// The replay runner over the log reader of the embedded mode, both real; the rest in memory.
const job: ReplayJob = {
  jobId: 'sparse',
  ruleId: 'rule',
  from: '2026-11-24T09:00:00.000Z',
  to: '2026-11-24T10:00:00.000Z',
  reevaluate: true,
  freshIds: false,
  status: 'running',
  cursor: { position: 0, deliveryId: '' },
  scanned: 0,
  scheduled: 0,
  total: null,
  error: null,
  createdAt: '2026-11-24T10:00:00.000Z',
  updatedAt: '2026-11-24T10:00:00.000Z',
  finishedAt: null,
};
/**
 * A re-evaluating job over `count` events of the log, of which those with `j >= 990` match, with
 * deliveries that finish as soon as they are scheduled: counts the runner's passes and log reads.
 */
function sparseWindow(count: number) {
  const at = '2026-11-24T09:30:00.000Z';
  const log: RecordedEvent[] = Array.from({ length: count }, (_, i) => ({
    eventId: `e${i}`,
    position: i + 1,
    streamId: `data-i${i}`,
    streamVersion: 1,
    type: 'DataIngested',
    data: { item_id: `i${i}`, partner_id: 'shop', event_type: 'order', payload: { j: i }, received_at: at, metadata: {} },
    metadata: {},
    recordedAt: at,
  }));
  const reads = { calls: 0, events: 0 };
  const store = {
    transaction: async (work: (tx: StoreTransaction) => Promise<unknown>) => work({ db } as StoreTransaction),
    headPosition: async () => log.length,
    readAll: async ({ after, limit }: ReadAllOptions) => {
      const page = log.filter((e) => e.position > after).slice(0, limit);
      reads.calls++;
      reads.events += page.length;
      return page;
    },
  } as unknown as EventStore;
  const db = {} as Kysely<object>;
  const progress = { passes: 0, scheduled: [] as string[], status: 'running' };
  let current = job;
  const rule = {
    rule_id: 'rule',
    app_id: 'shop',
    is_active: true,
    event_type_filter: null,
    ordering_key: null,
    destination_type: 'database',
  };
  const deps = {
    store,
    db,
    clock: fixedClock('2026-11-24T10:00:00.000Z'),
    newId: () => 'id',
    logger: { warn: () => undefined, error: () => undefined },
    rules: () => ({ get: async () => ({ ...rule, condition: { 'payload.j': { $gte: 990 } } }) as unknown as StoredRule }),
    deliveries: () => ({
      countByJob: async () => ({ pending: 0 }),
      webhookIdsOf: async () => new Map(),
      schedule: async (planned: Array<{ itemId: string }>) => {
        progress.scheduled.push(...planned.map((p) => p.itemId));
        return planned.map((p) => p.itemId);
      },
      cancelJob: async () => undefined,
    }),
    replays: () => ({
      running: async () => {
        progress.passes++;
        return progress.status === 'running' ? [current] : [];
      },
      get: async () => ({ ...current, status: progress.status }),
      claimStep: async (_jobId: string, from: ReplayJob['cursor']) =>
        progress.status === 'running' && from.position === current.cursor.position && from.deliveryId === current.cursor.deliveryId,
      advance: async (_jobId: string, next: Pick<ReplayJob, 'cursor' | 'scanned' | 'scheduled'>) => {
        current = { ...current, ...next };
      },
      finish: async (_jobId: string, status: string) => {
        progress.status = status;
        return true;
      },
    }),
    ruleState: async () => ({ status: 'absent' }),
    ingested: eventStoreItems(store),
    ratePerSecond: 1_000_000,
    onScheduled: () => undefined,
    conditionError: () => null,
  } as unknown as ReplayDeps;
  return { deps, reads, progress };
}

describe('a re-evaluating replay over a sparse window', () => {
  it('reads on until an event matches, at once, rather than one event a pass', async () => {
    const { deps, reads, progress } = sparseWindow(1_000);
    const runner = replayRunner(deps);
    runner.start();
    try {
      // Each match waits for its delivery (a window of one): the delivery worker wakes the runner.
      for (let wakes = 0; progress.status === 'running' && wakes < 40; wakes++) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        runner.wake();
      }
    } finally {
      await runner.stop();
    }
    expect(progress.status).toBe('completed');
    expect(progress.scheduled).toEqual(Array.from({ length: 10 }, (_, i) => `i${990 + i}`));
    // A pass per match and a few more, where each event took a pass of its own (a tick of 100 ms).
    expect(progress.passes).toBeLessThan(30);
    expect(reads.events).toBeLessThan(1_100);
  });
});
