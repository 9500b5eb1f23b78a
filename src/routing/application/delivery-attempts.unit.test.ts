import { describe, expect, it } from 'vitest';
import { fixedClock } from '../../shared/clock.js';
import { UnavailableError } from '../../shared/errors.js';
import { ConcurrencyError } from '../../shared/event-store/event-store.js';
import type { AppendRequest, EventStore, StoreTransaction } from '../../shared/event-store/event-store.js';
import { closedBreaker } from '../domain/circuit-breaker.js';
import { deliveryAttempts, type AttemptDeps } from './delivery-attempts.js';
import type { Delivery, StoredRule } from './ports.js';

const rule = {
  rule_id: 'r1',
  app_id: 'shop',
  rule_name: 'hooks',
  is_active: true,
  destination_type: 'webhook',
  destination_config: { url: 'https://hooks.example/in' },
} as unknown as StoredRule;

const delivery = {
  deliveryId: 'd1',
  ruleId: 'r1',
  itemId: 'i1',
  appId: 'shop',
  eventType: 'order',
  destinationType: 'webhook',
  body: '{}',
  status: 'pending',
  attempts: 0,
  webhookId: 'd1',
  replayJobId: null,
  earlierAttempts: 0,
} as unknown as Delivery;

/**
 * Deps whose database writes are noted in order; `failures` transactions fail as a busy database does,
 * or as PostgreSQL fails an append racing another one to a stream's next version (`raced`).
 */
function depsWith(failures: number, fault: 'busy' | 'raced' | 'deadlocked' = 'busy') {
  const writes: string[] = [];
  let sends = 0;
  let left = failures;
  const noted =
    (name: string) =>
    async (..._args: unknown[]) => {
      writes.push(name);
      return name === 'breakers.save' || name === 'beginAttempt' ? true : undefined;
    };
  const tx = {
    db: {},
    append: async (request: AppendRequest) => void writes.push(`append ${request.streamId}`),
    appendMany: async (requests: readonly AppendRequest[]) => void writes.push(`append ${requests.map((r) => r.streamId).join(', ')}`),
    isolated: (work: () => Promise<unknown>) => work(),
    afterCommit: () => undefined,
  } as unknown as StoreTransaction;
  const store = {
    transaction: async <T>(work: (t: StoreTransaction) => Promise<T>) => {
      writes.push('begin');
      const result = await work(tx);
      if (left-- > 0) {
        writes.push('rollback');
        throw fault === 'busy'
          ? new UnavailableError('storage.busy', 'all 10 database connections of this server are in use')
          : fault === 'raced'
            ? new ConcurrencyError('data-i1', 'any', 6)
            : Object.assign(new Error('deadlock detected'), { code: '40P01' });
      }
      writes.push('commit');
      return result;
    },
  } as unknown as EventStore;
  const deps = {
    store,
    db: {},
    clock: fixedClock('2026-12-07T06:00:00.000Z'),
    random: () => 0.5,
    logger: { warn: () => undefined, error: () => undefined, debug: () => undefined },
    rules: () => ({ get: async () => rule }),
    storedRules: () => ({ get: async () => rule }),
    vault: () => ({ openValues: async () => new Map(), signingSecrets: async () => ['whsec_c2VjcmV0', undefined] }),
    deliveries: () => ({
      beginAttempt: noted('beginAttempt'),
      record: noted('deliveries.record'),
      withdrawAttempt: noted('withdrawAttempt'),
      release: noted('release'),
    }),
    tables: () => ({}),
    webhooks: { send: async () => (sends++, { outcome: 'delivered', statusCode: 200, durationMs: 5 }) },
    queues: {},
    evaluator: { invalidate: () => undefined },
    retrySchedule: [1, 2],
    breakers: () => ({
      get: async () => new Map([['r1', { ...closedBreaker, failures: 1 }]]),
      getForChange: async () => ({ ...closedBreaker, failures: 1 }),
      save: noted('breakers.save'),
    }),
    breakerPolicy: { threshold: 5, cooldownMs: 30_000 },
    tallies: () => ({ add: noted('tallies.add') }),
    workerId: 'w1',
  } as unknown as AttemptDeps;
  return { deps, writes, sends: () => sends };
}

describe('an attempt that never went', () => {
  it('is taken back, with no retry and no failure of the destination, when the database fails before it is sent', async () => {
    const { deps, writes, sends } = depsWith(0);
    const busy = new UnavailableError('storage.busy', 'all 10 database connections of this server are in use');
    const attempts = deliveryAttempts({
      ...deps,
      vault: () => ({ openValues: async () => Promise.reject(busy), signingSecrets: async () => Promise.reject(busy) }),
    } as unknown as AttemptDeps);
    await attempts.attempt(delivery);
    expect(sends()).toBe(0);
    // It was counted as a retry and a failure of the destination's circuit.
    expect(writes).toEqual(['beginAttempt', 'begin', 'withdrawAttempt', 'release', 'commit']);
  });

  it('of a rule deleted meanwhile is dead-lettered as deleted, not as a rule without a signing secret', async () => {
    const { deps } = depsWith(0);
    const told: Array<{ reason: string | null }> = [];
    const attempts = deliveryAttempts({
      ...deps,
      // Still in the cache of rules (its delete not yet read from the log), gone from the table with its secrets.
      rules: () => ({ get: async () => rule }),
      storedRules: () => ({ get: async () => undefined }),
      vault: () => ({ openValues: async () => new Map(), signingSecrets: async () => [undefined, undefined] }),
      logger: { ...deps.logger, warn: (fields: { reason: string | null }) => void told.push(fields) },
    } as unknown as AttemptDeps);
    await attempts.attempt(delivery);
    expect(told.map((fields) => fields.reason)).toEqual(['the rule was deleted']);
  });
});

describe('an attempt another worker left in flight', () => {
  it('counts as interrupted and goes again as the next attempt, not sent now under its number (the first copy was lost from the log)', async () => {
    const { deps, writes, sends } = depsWith(0);
    const warned: string[] = [];
    const recorded: Array<{ attempts: number; status: string }> = [];
    const attempts = deliveryAttempts({
      ...deps,
      logger: { ...deps.logger, warn: (_: object, message: string) => void warned.push(message) },
      deliveries: () => ({
        ...deps.deliveries(deps.db),
        beginAttempt: async () => (writes.push('beginAttempt'), false),
        record: async (update: { attempts: number; status: string }) => (writes.push('deliveries.record'), void recorded.push(update)),
      }),
    } as unknown as AttemptDeps);
    await attempts.attempt(delivery);
    expect(sends()).toBe(0);
    expect(writes).toEqual(['beginAttempt', 'begin', 'deliveries.record', 'append data-i1', 'commit']);
    expect(recorded).toMatchObject([{ attempts: 1, status: 'pending' }]);
    expect(warned).toEqual(["another worker's attempt was in flight when its lease ran out; it counts as interrupted and goes again"]);
  });
});

describe('an attempt’s recording', () => {
  it('appends its events last, so the log’s lock is held for one statement before the commit', async () => {
    const { deps, writes } = depsWith(0);
    await deliveryAttempts(deps).attempt(delivery);
    expect(writes).toEqual(['beginAttempt', 'begin', 'deliveries.record', 'breakers.save', 'tallies.add', 'append data-i1', 'commit']);
  });

  it('is tried again when the database fails it for a moment, rather than the delivery being sent again', async () => {
    const { deps, writes, sends } = depsWith(2);
    await deliveryAttempts(deps).attempt(delivery);
    expect(sends()).toBe(1);
    expect(writes.filter((w) => w === 'commit')).toHaveLength(1);
    expect(writes.filter((w) => w === 'rollback')).toHaveLength(2);
  }, 10_000);

  it.each(['raced', 'deadlocked'] as const)(
    'is tried again at once when it lost to another transaction (%s), rather than taken for interrupted and sent again',
    async (fault) => {
      const { deps, writes, sends } = depsWith(3, fault);
      await deliveryAttempts(deps).attempt(delivery);
      expect(sends()).toBe(1);
      expect(writes.filter((w) => w === 'commit')).toHaveLength(1);
      expect(writes.filter((w) => w === 'rollback')).toHaveLength(3);
    },
  );
});
