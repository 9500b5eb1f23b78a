import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../../shared/clock.js';
import { messageOf, NotFoundError, ValidationError } from '../../shared/errors.js';
import type { EventStore } from '../../shared/event-store/event-store.js';
import { isStorageFault } from '../../shared/event-store/storage-fault.js';
import type { IdGenerator } from '../../shared/ids.js';
import { OverBudget, workBudget } from '../../shared/work-budget.js';
import { compileCondition, conditionProblem } from '../domain/condition.js';
import { deliveryIdOf } from '../domain/delivery.js';
import { orderingKeyOf } from '../domain/ordering-key.js';
import { freshWebhookIdOf, parseReplayRequest, replayDeliveryIdOf } from '../domain/replay.js';
import type { RuleState } from '../domain/routing-rule.js';
import type {
  DeliveryStatus,
  DeliveryStoreFor,
  IngestedItems,
  NewDelivery,
  ReplayJob,
  ReplayStoreFor,
  RuleCatalogFor,
  StoredRule,
} from './ports.js';
import { conditionDocumentOf, RULE_STEPS_PER_EVENT } from './rule-evaluator.js';
import { deliveryBodyOf, routedDocumentOf } from './routing-scheduler.js';
import type { ConditionErrorOf } from './condition-errors.js';
import type { ItemSnapshot } from '../../shared/contracts/data-events.js';

export interface ReplayDeps {
  readonly store: EventStore;
  readonly db: Kysely<object>;
  readonly clock: Clock;
  readonly newId: IdGenerator;
  readonly logger: Pick<Logger, 'warn' | 'error'>;
  readonly rules: RuleCatalogFor;
  readonly deliveries: DeliveryStoreFor;
  readonly replays: ReplayStoreFor;
  readonly ruleState: (ruleId: string) => Promise<RuleState>;
  /** The log of ingested items, where this process can read it (the embedded mode); needed to re-evaluate. */
  readonly ingested: IngestedItems | undefined;
  /** Events a job schedules per second at most. */
  readonly ratePerSecond: number;
  /**
   * A job's deliveries waiting to be sent at most (1 by default: a job sends in log order, one at a
   * time, so a crash can repeat only the one in flight).
   */
  readonly window?: number;
  /** New deliveries are due: wakes the delivery worker. */
  readonly onScheduled: () => void;
  /** Why a stored rule's condition cannot run today (a re-evaluating job cannot go on with it). */
  readonly conditionError: ConditionErrorOf;
}

export interface ReplayProgress {
  readonly job: ReplayJob;
  readonly deliveries: Record<DeliveryStatus, number>;
}

const TICK_MS = 100;
/**
 * Events of the log a re-evaluating step reads at most while looking for matches: a sparse window
 * goes on at once after each such step, so it costs reads, never a tick per event.
 */
const READ_BUDGET = 4_000;
/** Passes in a row in which one job may fail before it is ended as failed, with the error. */
const JOB_ATTEMPTS = 5;

/**
 * A rule's deliveries may be sent again only while it is live and active: an unknown rule is not
 * found, and a deleted or disabled one would dead-letter them again at once.
 */
export function assertReplayable(ruleId: string, state: RuleState): void {
  if (state.status === 'absent') throw new NotFoundError('routing.rule-not-found', `no routing rule ${ruleId}`);
  if (state.status === 'deleted')
    throw new ValidationError('routing.rule-deleted', `rule ${ruleId} was deleted: there is nothing to replay to`);
  if (!state.fields.is_active) throw new ValidationError('routing.rule-disabled', `rule ${ruleId} is disabled: enable it before replaying`);
}

/** Starts a replay of a live, active rule over a past window; one at a time per rule. */
export const startReplay =
  (deps: ReplayDeps) =>
  async (ruleId: string, input: { from?: unknown; to?: unknown; reevaluate?: unknown; fresh_ids?: unknown }): Promise<ReplayJob> => {
    const state = await deps.ruleState(ruleId);
    assertReplayable(ruleId, state);
    const now = deps.clock.now();
    const request = parseReplayRequest(input, now);
    if (request.reevaluate && !deps.ingested)
      throw new ValidationError(
        'routing.reevaluate-unavailable',
        'this routing service does not hold the ingested events: reevaluate is available in the embedded mode only',
        [{ path: 'reevaluate', message: 'not available here' }],
      );
    const unevaluable = request.reevaluate && state.status === 'live' ? conditionProblem(state.fields.condition) : null;
    if (unevaluable !== null)
      throw new ValidationError(
        'routing.condition-unevaluable',
        `rule ${ruleId}'s condition cannot run under today's limits, so it cannot be re-evaluated (replace it with PUT): ${unevaluable}`,
        [{ path: 'reevaluate', message: 'the rule’s condition cannot run' }],
      );
    const at = now.toISOString();
    const window = { from: request.from, to: request.to };
    const job: ReplayJob = {
      jobId: deps.newId(),
      ruleId,
      ...window,
      reevaluate: request.reevaluate,
      freshIds: request.freshIds,
      status: 'running',
      cursor: { position: 0, deliveryId: '' },
      scanned: 0,
      scheduled: 0,
      total: request.reevaluate ? null : await deps.deliveries(deps.db).countWindow(ruleId, window),
      error: null,
      createdAt: at,
      updatedAt: at,
      finishedAt: null,
    };
    await deps.store.transaction((tx) => deps.replays(tx.db).create(job));
    return job;
  };

export const replayProgress =
  (deps: Pick<ReplayDeps, 'db' | 'replays' | 'deliveries'>) =>
  async (ruleId: string, jobId: string): Promise<ReplayProgress> => {
    const job = await deps.replays(deps.db).get(jobId);
    if (!job || job.ruleId !== ruleId) throw new NotFoundError('routing.replay-not-found', `no replay ${jobId} of rule ${ruleId}`);
    return { job, deliveries: await deps.deliveries(deps.db).countByJob(jobId) };
  };

/** Stops a running job: nothing more is scheduled, and its deliveries not yet being sent are withdrawn. */
export const cancelReplay =
  (deps: Pick<ReplayDeps, 'store' | 'db' | 'replays' | 'deliveries' | 'clock'>) =>
  async (ruleId: string, jobId: string): Promise<ReplayProgress> => {
    const job = await deps.replays(deps.db).get(jobId);
    if (!job || job.ruleId !== ruleId) throw new NotFoundError('routing.replay-not-found', `no replay ${jobId} of rule ${ruleId}`);
    const at = deps.clock.now().toISOString();
    await deps.store.transaction(async (tx) => {
      if (await deps.replays(tx.db).finish(jobId, 'cancelled', at)) await deps.deliveries(tx.db).cancelJob(jobId, at);
    });
    return replayProgress(deps)(ruleId, jobId);
  };

/** An event the rule's condition cannot be tested on within what it could cost at ingestion. */
class Unevaluable extends Error {}

/** Whether the rule, as it stands now, takes an event of its application. */
function matcherOf(rule: StoredRule): (item: ItemSnapshot) => boolean {
  const test = compileCondition(rule.condition);
  return (item) => {
    if (rule.event_type_filter !== null && rule.event_type_filter !== item.event_type) return false;
    try {
      // Each event within what it could cost at ingestion, so a replay holds the thread no longer.
      // The document the rule was matched against at ingestion (`properties.*` reads the payload's).
      return test(conditionDocumentOf(routedDocumentOf(item)), workBudget(RULE_STEPS_PER_EVENT));
    } catch (error) {
      if (!(error instanceof OverBudget)) throw error;
      throw new Unevaluable(
        `event ${item.item_id} cannot be re-evaluated: the rule's condition would take more than ` +
          `${error.limit.toLocaleString('en')} steps on it (${error.what ?? 'its values are too large'}); ` +
          'replay the window after it, or without reevaluate',
      );
    }
  };
}

/** The window's next `limit` events the rule takes as it stands now, or why one of them cannot be tested. */
async function readMatching(ingested: IngestedItems, job: ReplayJob, rule: StoredRule, limit: number) {
  try {
    // The condition is tested as the log is read: a step takes `limit` matching events, not `limit` events.
    return await ingested.read(rule.app_id, job, job.cursor.position, { limit, budget: READ_BUDGET, accept: matcherOf(rule) });
  } catch (error) {
    if (!(error instanceof Unevaluable)) throw error;
    return { failure: error.message };
  }
}

/**
 * Runs the replay jobs: each tick schedules a few more of a job's events as deliveries of their own
 * (ids derived from job and event, so a resumed job schedules nothing twice), moving the job's cursor
 * in the same transaction. A job never has more than `window` deliveries waiting, schedules at most
 * `ratePerSecond`, and the worker serves live deliveries before a replay's.
 */
export function replayRunner(deps: ReplayDeps): { start(): void; stop(): Promise<void>; wake(): void } {
  const window = deps.window ?? 1;
  // A token bucket: `ratePerSecond` refills it, a scheduled event takes one.
  const capacity = Math.max(1, window, Math.ceil(deps.ratePerSecond / 10));
  let credit = 0;
  let refilledAt = performance.now();
  let running = false;
  let loop: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let wakeUp: (() => void) | undefined;

  const candidates = async (job: ReplayJob, rule: StoredRule, limit: number) => {
    const db = deps.db;
    if (!job.reevaluate) {
      const originals = await deps.deliveries(db).window(job.ruleId, job, job.cursor, limit);
      const last = originals.at(-1);
      return {
        planned: originals.map((d) => ({
          originalId: d.webhookId,
          itemId: d.itemId,
          appId: d.appId,
          eventType: d.eventType,
          body: d.body,
          orderingKey: d.orderingKey,
          position: d.position,
          receivedAt: d.receivedAt,
        })),
        scanned: originals.length,
        cursor: last ? { position: last.position, deliveryId: last.deliveryId } : job.cursor,
        done: originals.length < limit,
      };
    }
    if (!deps.ingested) throw new Error('a re-evaluating replay needs the log of ingested items');
    const read = await readMatching(deps.ingested, job, rule, limit);
    if ('failure' in read) return { planned: [], scanned: 0, cursor: job.cursor, done: false, failure: read.failure };
    const matching = read.items;
    // An item routed before keeps the id its receiver saw, whichever form of id it was given then.
    const originals = await deps.deliveries(db).webhookIdsOf(
      rule.rule_id,
      matching.map(({ item }) => item.item_id),
    );
    return {
      planned: matching.map(({ position, item }) => ({
        originalId: originals.get(item.item_id) ?? deliveryIdOf(item.item_id, rule.rule_id, item.received_at),
        itemId: item.item_id,
        appId: item.partner_id,
        eventType: item.event_type,
        body: deliveryBodyOf(item),
        orderingKey: rule.ordering_key ? (orderingKeyOf(rule.ordering_key, routedDocumentOf(item)) ?? null) : null,
        position,
        receivedAt: item.received_at,
      })),
      scanned: matching.length,
      cursor: { position: read.lastPosition, deliveryId: '' },
      done: read.done,
    };
  };

  /** One step of a job; true when it read on through the window without scheduling anything, and may go on at once. */
  const step = async (job: ReplayJob): Promise<boolean> => {
    const db = deps.db;
    const at = deps.clock.now().toISOString();
    const rule = await deps.rules(db).get(job.ruleId);
    if (!rule?.is_active) {
      await deps.store.transaction(async (tx) => {
        if (await deps.replays(tx.db).finish(job.jobId, 'failed', at, rule ? 'the rule was disabled' : 'the rule was deleted'))
          await deps.deliveries(tx.db).cancelJob(job.jobId, at);
      });
      return false;
    }
    // A job started before an upgrade whose limits refuse the rule's condition: it cannot go on.
    const unevaluable = job.reevaluate ? deps.conditionError(rule) : null;
    if (unevaluable !== null) {
      await deps.store.transaction(async (tx) => {
        if (await deps.replays(tx.db).finish(job.jobId, 'failed', at, `the rule's condition cannot run: ${unevaluable}`))
          await deps.deliveries(tx.db).cancelJob(job.jobId, at);
      });
      return false;
    }
    const waiting = (await deps.deliveries(db).countByJob(job.jobId)).pending;
    const room = Math.min(window - waiting, Math.floor(credit));
    if (room <= 0) return false;
    const next = await candidates(job, rule, room);
    if (next.failure !== undefined) {
      const failure = next.failure;
      await deps.store.transaction(async (tx) => {
        if (await deps.replays(tx.db).finish(job.jobId, 'failed', at, failure)) await deps.deliveries(tx.db).cancelJob(job.jobId, at);
      });
      return false;
    }
    if (next.scanned === 0 && next.done) {
      if (waiting === 0) await deps.replays(db).finish(job.jobId, 'completed', at);
      else if (next.cursor.position !== job.cursor.position)
        await deps.replays(db).advance(job.jobId, { cursor: next.cursor, scanned: job.scanned, scheduled: job.scheduled, at });
      return false;
    }
    const planned: NewDelivery[] = next.planned.map(({ originalId, ...p }) => ({
      ...p,
      deliveryId: replayDeliveryIdOf(job.jobId, p.itemId),
      ruleId: job.ruleId,
      destinationType: rule.destination_type,
      createdAt: at,
      // Receivers that deduplicate must see the id they saw before, unless fresh ids were asked for.
      webhookId: job.freshIds ? freshWebhookIdOf(job.jobId, p.itemId) : originalId,
      replayJobId: job.jobId,
    }));
    let inserted = 0;
    await deps.store.transaction(async (tx) => {
      // Stepped meanwhile by another replica (or ended): its step stands, counted once.
      if (!(await deps.replays(tx.db).claimStep(job.jobId, job.cursor, at))) return;
      inserted = (await deps.deliveries(tx.db).schedule(planned)).length;
      await deps.replays(tx.db).advance(job.jobId, {
        cursor: next.cursor,
        scanned: job.scanned + next.scanned,
        scheduled: job.scheduled + inserted,
        at,
      });
    });
    credit -= planned.length;
    if (inserted > 0) deps.onScheduled();
    return planned.length === 0 && !next.done;
  };

  // A job that throws stops no other job: it is tried again on the next passes, then ended as failed.
  const failures = new Map<string, number>();
  const failed = async (job: ReplayJob, error: unknown) => {
    const count = (failures.get(job.jobId) ?? 0) + 1;
    const reason = messageOf(error);
    if (count === 1) deps.logger.warn({ job_id: job.jobId, rule_id: job.ruleId, err: error }, 'replay job failed; trying it again');
    if (count < JOB_ATTEMPTS) {
      failures.set(job.jobId, count);
      return;
    }
    failures.delete(job.jobId);
    const at = deps.clock.now().toISOString();
    await deps.store.transaction(async (tx) => {
      if (await deps.replays(tx.db).finish(job.jobId, 'failed', at, `the replay failed ${JOB_ATTEMPTS} times: ${reason}`))
        await deps.deliveries(tx.db).cancelJob(job.jobId, at);
    });
    deps.logger.error({ job_id: job.jobId, rule_id: job.ruleId, err: error }, 'replay job ended as failed');
  };

  const run = async () => {
    while (running) {
      let readingOn = false;
      try {
        const now = performance.now();
        credit = Math.min(capacity, credit + ((now - refilledAt) * deps.ratePerSecond) / 1000);
        refilledAt = now;
        for (const job of await deps.replays(deps.db).running()) {
          if (!running) break;
          try {
            if (await step(job)) readingOn = true;
            failures.delete(job.jobId);
          } catch (error) {
            // The storage failing is no job's fault: the whole pass waits it out.
            if (isStorageFault(error)) throw error;
            await failed(job, error);
          }
        }
      } catch (error) {
        deps.logger.error({ err: error }, 'replay runner failed; retrying');
      }
      await new Promise<void>((resolve) => {
        wakeUp = resolve;
        // A job reading through a sparse window goes on after a turn of the event loop, not a tick.
        timer = setTimeout(resolve, readingOn ? 0 : TICK_MS);
      });
    }
  };

  return {
    start() {
      if (running) return;
      running = true;
      loop = run();
    },
    async stop() {
      running = false;
      clearTimeout(timer);
      wakeUp?.();
      await loop;
    },
    /** A job's delivery finished: its next event may go now. */
    wake() {
      clearTimeout(timer);
      wakeUp?.();
    },
  };
}
