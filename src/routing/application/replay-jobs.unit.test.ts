import type { Kysely } from 'kysely';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fixedClock } from '../../shared/clock.js';
import type { EventStore, StoreTransaction } from '../../shared/event-store/event-store.js';
import type { ReplayJob, StoredRule } from './ports.js';
import { replayRunner, type ReplayDeps } from './replay-jobs.js';

const job = (jobId: string, ruleId: string): ReplayJob => ({
  jobId,
  ruleId,
  from: '2026-11-24T09:00:00.000Z',
  to: '2026-11-24T10:00:00.000Z',
  reevaluate: false,
  freshIds: false,
  status: 'running',
  cursor: { position: 0, deliveryId: '' },
  scanned: 0,
  scheduled: 0,
  total: 0,
  error: null,
  createdAt: '2026-11-24T10:00:00.000Z',
  updatedAt: '2026-11-24T10:00:00.000Z',
  finishedAt: null,
});

/** Two jobs over an empty window: one whose rule can no longer be read, and a healthy one after it. */
function fixture() {
  const jobs = new Map([
    ['broken', job('broken', 'unreadable')],
    ['healthy', job('healthy', 'fine')],
  ]);
  const ended = new Map<string, { status: string; error?: string }>();
  const warnings: string[] = [];
  const db = {} as Kysely<object>;
  const deps = {
    store: { transaction: async (work: (tx: StoreTransaction) => Promise<unknown>) => work({ db } as StoreTransaction) } as EventStore,
    db,
    clock: fixedClock('2026-11-24T10:00:00.000Z'),
    newId: () => 'id',
    logger: { warn: (_: object, message: string) => warnings.push(message), error: () => undefined },
    rules: () => ({
      get: async (ruleId: string) => {
        if (ruleId === 'unreadable') throw new SyntaxError('Unexpected token n in JSON at position 0');
        return { rule_id: ruleId, is_active: true } as StoredRule;
      },
    }),
    deliveries: () => ({
      countByJob: async () => ({ pending: 0 }),
      window: async () => [],
      cancelJob: async () => undefined,
    }),
    replays: () => ({
      running: async () => [...jobs.values()],
      finish: async (jobId: string, status: string, _at: string, error?: string) => {
        jobs.delete(jobId);
        ended.set(jobId, { status, ...(error === undefined ? {} : { error }) });
        return true;
      },
      advance: async () => undefined,
    }),
    ruleState: async () => ({ status: 'absent' }),
    ingested: undefined,
    ratePerSecond: 1000,
    onScheduled: () => undefined,
    conditionError: () => null,
  } as unknown as ReplayDeps;
  return { deps, jobs, ended, warnings };
}

describe('the replay runner', () => {
  it('goes on with the other jobs when one throws, and ends that one as failed after five passes, saying it once', async () => {
    const { deps, jobs, ended, warnings } = fixture();
    const runner = replayRunner(deps);
    runner.start();
    try {
      for (let pass = 0; jobs.size > 0 && pass < 100; pass++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        runner.wake();
      }
    } finally {
      await runner.stop();
    }
    expect(ended.get('healthy')).toEqual({ status: 'completed' });
    expect(ended.get('broken')).toEqual({ status: 'failed', error: 'the replay failed 5 times: Unexpected token n in JSON at position 0' });
    expect(warnings).toEqual(['replay job failed; trying it again']);
  });

  afterEach(() => vi.restoreAllMocks());

  it('paces jobs by elapsed time, not by the wall clock: a clock set back ten minutes holds no job back ten minutes', async () => {
    const { deps, jobs, ended } = fixture();
    jobs.delete('broken');
    const runner = replayRunner(deps);
    const wallClock = Date.now.bind(Date);
    vi.spyOn(Date, 'now').mockImplementation(() => wallClock() - 600_000);
    runner.start();
    try {
      for (let pass = 0; jobs.size > 0 && pass < 50; pass++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        runner.wake();
      }
    } finally {
      await runner.stop();
    }
    expect(ended.get('healthy')).toEqual({ status: 'completed' });
  });
});
