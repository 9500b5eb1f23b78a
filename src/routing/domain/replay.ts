import { createHash } from 'node:crypto';
import { ValidationError, type Violation } from '../../shared/errors.js';
import { instantBound } from '../../shared/instant-bound.js';

/** Options of a replay of one rule's deliveries over a window of time. */
export interface ReplayRequest {
  readonly from: string;
  readonly to: string;
  /** Apply the rule's current condition to the window's events instead of taking what it matched then. */
  readonly reevaluate: boolean;
  /** Send webhooks under new ids instead of the ones receivers saw before. */
  readonly freshIds: boolean;
}

/**
 * Checks a replay window: both ends are times, `from` is not after `to`, and the window is not in the
 * future. Both ends are kept (an event received at either is replayed), to the last digit given: an
 * end with a fraction of a millisecond is the stored millisecond within the window.
 */
export function parseReplayRequest(
  input: { from?: unknown; to?: unknown; reevaluate?: unknown; fresh_ids?: unknown },
  now: Date,
): ReplayRequest {
  const violations: Violation[] = [];
  const time = (key: 'from' | 'to') => {
    const value = input[key];
    const ms = typeof value === 'string' ? Date.parse(value) : Number.NaN;
    if (Number.isNaN(ms)) violations.push({ path: key, message: 'must be an ISO 8601 date-time' });
    return ms;
  };
  const from = time('from');
  const to = time('to');
  if (!Number.isNaN(from) && !Number.isNaN(to)) {
    if (from > to) violations.push({ path: 'from', message: 'must not be after to' });
    if (to > now.getTime()) violations.push({ path: 'to', message: 'must not be in the future: the window replays what already happened' });
  }
  if (violations.length > 0)
    throw new ValidationError('routing.invalid-replay', violations.map((v) => `${v.path} ${v.message}`).join('; '), violations);
  return {
    from: instantBound(input.from as string, 'up'),
    to: instantBound(input.to as string, 'down'),
    reevaluate: input.reevaluate === true,
    freshIds: input.fresh_ids === true,
  };
}

/** The replay's own delivery of one event: the same id on every run of the job, so a resumed job schedules nothing twice. */
export function replayDeliveryIdOf(jobId: string, itemId: string): string {
  return `rpl_${createHash('sha256').update(`${jobId}:${itemId}`).digest('hex').slice(0, 32)}`;
}

/** A new webhook id for an event, unique to the job (the `fresh_ids` option). */
export function freshWebhookIdOf(jobId: string, itemId: string): string {
  return `msg_${createHash('sha256').update(`fresh:${jobId}:${itemId}`).digest('hex').slice(0, 32)}`;
}
