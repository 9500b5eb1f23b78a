import type { SubscriberStatus } from '../shared/subscriptions/in-process-subscriptions.js';
import type { CheckStatus } from './http/server.js';

// A subscriber this far behind the head is reported degraded, whatever the flow control allows.
const LAG_WARNING = 10_000;

/**
 * A subscriber's readiness check: down when it is not running; degraded when it has parked events or
 * trails the head by more than twice the backlog flow control allows (a sustained load keeps it near
 * that limit, which is how the server runs, not a fault) and never less than 10,000 events.
 */
export function subscriberCheck(s: SubscriberStatus, backlogLimit: number): { status: CheckStatus; detail: string } {
  const lagWarning = Math.max(LAG_WARNING, 2 * backlogLimit);
  // A view being rebuilt answers, but incompletely: degraded until the replay has read what was there.
  const replaying = s.replayingUntil !== undefined;
  return {
    status: s.state !== 'running' ? 'down' : s.lag > lagWarning || s.parked > 0 || replaying ? 'degraded' : 'ok',
    detail:
      `${s.state}${s.fault ? ` (${s.fault})` : ''}${replaying ? `, replaying up to position ${s.replayingUntil}` : ''}, ` +
      `position ${s.position}, lag ${s.lag}, parked ${s.parked}`,
  };
}
