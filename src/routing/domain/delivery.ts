import { hash as digest } from 'node:crypto';
import type { DeliveryAttempted, DeliveryDeadLettered, DeliveryFailed, DeliverySucceeded } from '../../shared/contracts/routing-events.js';

/** Default retry schedule in seconds: 7 retries over about 28 hours, then the dead-letter queue. */
export const DEFAULT_RETRY_SCHEDULE = [5, 300, 1800, 7200, 18000, 36000, 36000];

/**
 * The longest wait a receiver's Retry-After can impose on one retry (a day). A receiver chooses the
 * value: without a bound, one asking for years would park the delivery (and its ordering key) out of
 * reach, and one beyond the range of a date would make the attempt impossible to record.
 */
export const MAX_RETRY_AFTER_MS = 24 * 60 * 60 * 1000;

/**
 * One id per (item, rule), the same on every attempt and after any redelivery: receivers deduplicate on it.
 * It starts with the item's arrival time (milliseconds, 12 hex digits), so ids increase with time: the
 * tables and indexes keyed by it take each new delivery at their end, where a random key would dirty a
 * page anywhere in them on every insert. The rest is a hash of item and rule.
 */
export function deliveryIdOf(itemId: string, ruleId: string, receivedAt: string): string {
  const hash = digest('sha256', `${itemId}:${ruleId}`, 'hex');
  const time = Date.parse(receivedAt);
  if (!Number.isFinite(time) || time < 0) return `msg_${hash.slice(0, 32)}`;
  return `msg_${time.toString(16).padStart(12, '0').slice(-12)}${hash.slice(0, 20)}`;
}

export type AttemptOutcome =
  | { readonly outcome: 'delivered'; readonly statusCode?: number; readonly durationMs: number }
  | {
      readonly outcome: 'retry';
      readonly reason: string;
      readonly statusCode?: number;
      readonly retryAfterMs?: number;
      readonly durationMs: number;
    }
  | {
      readonly outcome: 'rejected' | 'gone';
      readonly reason: string;
      readonly statusCode?: number;
      /**
       * The refusal holds for every delivery to the destination, not this one alone (a broker refusing
       * Intake's credentials or permissions, a broker Intake is not configured for), as a 401 or 403 does.
       */
      readonly refusesAll?: true;
      readonly durationMs: number;
    };

export interface AttemptDecision {
  readonly status: 'pending' | 'succeeded' | 'dead_lettered';
  readonly nextAttemptAt: string | null;
  readonly events: Array<DeliveryAttempted | DeliverySucceeded | DeliveryFailed | DeliveryDeadLettered>;
  /** The rule's endpoint answered 410 Gone: it must be disabled. */
  readonly disableRule: boolean;
}

interface AttemptContext {
  readonly itemId: string;
  readonly deliveryId: string;
  readonly ruleId: string;
  /** The attempt just made, from 1. Numbers go on across replays, so the attempt log keeps every one. */
  readonly attempt: number;
  /**
   * Attempts made before the delivery was last replayed from the dead-letter queue (0 if never): a
   * replay starts the schedule over, so the n-th attempt since then waits schedule[n - 1].
   */
  readonly earlierAttempts: number;
  readonly at: Date;
  /** Seconds to wait after attempt n is schedule[n - 1]; past its end the delivery is dead-lettered. */
  readonly schedule: readonly number[];
  /** A number in [0, 1) for the jitter. */
  readonly random: number;
}

/**
 * Decides what an attempt's outcome means: success, a retry with exponential backoff and ±20 %
 * jitter (never sooner than a Retry-After, which counts up to a day), or the dead-letter queue once
 * the schedule is spent (counted from the last replay, when there was one).
 */
export function decideAttempt(ctx: AttemptContext, result: AttemptOutcome): AttemptDecision {
  const at = ctx.at.toISOString();
  const ids = { item_id: ctx.itemId, delivery_id: ctx.deliveryId, rule_id: ctx.ruleId, attempt: ctx.attempt };
  const attempted: DeliveryAttempted = { type: 'DeliveryAttempted', data: { ...ids, attempted_at: at } };
  const statusCode = result.statusCode ?? null;

  if (result.outcome === 'delivered') {
    return {
      status: 'succeeded',
      nextAttemptAt: null,
      disableRule: false,
      events: [
        attempted,
        { type: 'DeliverySucceeded', data: { ...ids, status_code: statusCode, duration_ms: result.durationMs, delivered_at: at } },
      ],
    };
  }

  const delaySeconds = ctx.schedule[ctx.attempt - ctx.earlierAttempts - 1];
  if (result.outcome === 'retry' && delaySeconds !== undefined) {
    const jittered = delaySeconds * 1000 * (0.8 + 0.4 * ctx.random);
    const retryAfter = Math.min(result.retryAfterMs ?? 0, MAX_RETRY_AFTER_MS);
    const next = new Date(ctx.at.getTime() + Math.max(jittered, retryAfter)).toISOString();
    return {
      status: 'pending',
      nextAttemptAt: next,
      disableRule: false,
      events: [
        attempted,
        { type: 'DeliveryFailed', data: { ...ids, reason: result.reason, status_code: statusCode, next_attempt_at: next, failed_at: at } },
      ],
    };
  }

  const reason = result.outcome === 'retry' ? `${result.reason} (${gaveUp(ctx)})` : result.reason;
  return {
    status: 'dead_lettered',
    nextAttemptAt: null,
    disableRule: result.outcome === 'gone',
    events: [
      attempted,
      { type: 'DeliveryFailed', data: { ...ids, reason, status_code: statusCode, next_attempt_at: null, failed_at: at } },
      { type: 'DeliveryDeadLettered', data: { ...ids, reason, dead_lettered_at: at } },
    ],
  };
}

/**
 * The retry an attempt's outcome scheduled, due at `at` instead: the rule's destination changed while
 * the attempt was in flight, and the wait its answer asked for (a backoff, a Retry-After) was the
 * former destination's.
 */
export function retriedAt(decision: AttemptDecision, at: Date): AttemptDecision {
  if (decision.status !== 'pending') return decision;
  const next = at.toISOString();
  return {
    ...decision,
    nextAttemptAt: next,
    events: decision.events.map((event) =>
      event.type === 'DeliveryFailed' ? { ...event, data: { ...event.data, next_attempt_at: next } } : event,
    ),
  };
}

/** Why a deleted rule's deliveries are dead-lettered. */
export const RULE_DELETED = 'the rule was deleted';

/**
 * The attempt's outcome stands, but no retry follows: the rule was deleted while the attempt was in
 * flight, and the delivery is dead-lettered with `reason` (its attempt keeps what the destination said).
 */
export function givenUpAfter(decision: AttemptDecision, reason: string, at: Date): AttemptDecision {
  const attempted = decision.events.find((event) => event.type === 'DeliveryAttempted');
  if (decision.status !== 'pending' || !attempted) return decision;
  const { item_id, delivery_id, rule_id, attempt } = attempted.data;
  return {
    status: 'dead_lettered',
    nextAttemptAt: null,
    disableRule: false,
    events: [
      ...decision.events.map((event) =>
        event.type === 'DeliveryFailed' ? { ...event, data: { ...event.data, next_attempt_at: null } } : event,
      ),
      { type: 'DeliveryDeadLettered', data: { item_id, delivery_id, rule_id, attempt, reason, dead_lettered_at: at.toISOString() } },
    ],
  };
}

/**
 * The dead letter of a delivery given up with no attempt (its rule was deleted while it waited): it
 * carries the number of the delivery's last attempt (0 if none), or, for a dead letter replayed and not
 * tried since, the number its DeliveryReplayed announced, so that readers of the item take it as the
 * latest fact.
 */
export function deadLetterUnattempted(
  delivery: {
    readonly itemId: string;
    readonly deliveryId: string;
    readonly ruleId: string;
    readonly attempts: number;
    readonly earlierAttempts: number;
  },
  reason: string,
  at: Date,
): DeliveryDeadLettered {
  const replayedSince = delivery.attempts > 0 && delivery.earlierAttempts === delivery.attempts;
  return {
    type: 'DeliveryDeadLettered',
    data: {
      item_id: delivery.itemId,
      delivery_id: delivery.deliveryId,
      rule_id: delivery.ruleId,
      attempt: replayedSince ? delivery.attempts + 1 : delivery.attempts,
      reason,
      dead_lettered_at: at.toISOString(),
    },
  };
}

/** After how many attempts a delivery was given up: all of them, and those since its last replay when it was replayed. */
function gaveUp(ctx: Pick<AttemptContext, 'attempt' | 'earlierAttempts'>): string {
  const since = ctx.attempt - ctx.earlierAttempts;
  return ctx.earlierAttempts > 0
    ? `gave up after ${ctx.attempt} attempts, ${since} since it was replayed`
    : `gave up after ${ctx.attempt} attempts`;
}

/** The longest wait one retry may be given (30 days): longer ones are typing mistakes, and past a date's range they could not be stored. */
const MAX_RETRY_DELAY_SECONDS = 30 * 24 * 60 * 60;

export function parseRetrySchedule(text: string | undefined): number[] {
  if (text === undefined || text.trim() === '') return DEFAULT_RETRY_SCHEDULE;
  const parts = text.split(',').map((part) => part.trim());
  // Number('') is 0: an empty entry ("5,,60") is a mistake, not an immediate retry.
  const seconds = parts.map((part) => (part === '' ? Number.NaN : Number(part)));
  if (seconds.some((s) => !Number.isFinite(s) || s < 0 || s > MAX_RETRY_DELAY_SECONDS))
    throw new Error(`WEBHOOK_RETRY_SCHEDULE must be a comma list of seconds, each at most ${MAX_RETRY_DELAY_SECONDS} (got "${text}")`);
  return seconds;
}

/** What an attempt in flight when the process stopped is recorded with. */
export const INTERRUPTED = 'interrupted: the process stopped while the attempt was in flight';

/**
 * An attempt that was in flight when the process stopped: the receiver may have seen it, so it
 * counts as an attempt, and the next one goes at once rather than after the usual delay.
 */
export function decideInterrupted(ctx: Omit<AttemptContext, 'random'>): AttemptDecision {
  const at = ctx.at.toISOString();
  const ids = { item_id: ctx.itemId, delivery_id: ctx.deliveryId, rule_id: ctx.ruleId, attempt: ctx.attempt };
  const attempted: DeliveryAttempted = { type: 'DeliveryAttempted', data: { ...ids, attempted_at: at } };
  if (ctx.attempt - ctx.earlierAttempts <= ctx.schedule.length) {
    return {
      status: 'pending',
      nextAttemptAt: at,
      disableRule: false,
      events: [
        attempted,
        { type: 'DeliveryFailed', data: { ...ids, reason: INTERRUPTED, status_code: null, next_attempt_at: at, failed_at: at } },
      ],
    };
  }
  const reason = `${INTERRUPTED} (${gaveUp(ctx)})`;
  return {
    status: 'dead_lettered',
    nextAttemptAt: null,
    disableRule: false,
    events: [
      attempted,
      { type: 'DeliveryFailed', data: { ...ids, reason, status_code: null, next_attempt_at: null, failed_at: at } },
      { type: 'DeliveryDeadLettered', data: { ...ids, reason, dead_lettered_at: at } },
    ],
  };
}
