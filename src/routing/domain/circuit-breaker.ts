/**
 * A circuit breaker per destination (one rule is one destination). After `threshold` consecutive
 * failures the circuit opens: nothing is sent until `nextProbeAt`, then one probe (half-open)
 * decides: success closes it, failure opens it for another cool-down. Pure rules; the worker
 * stores the state and asks these functions what to do.
 */
export type BreakerState = 'closed' | 'open' | 'half_open';

export interface Breaker {
  readonly state: BreakerState;
  /** Consecutive failures since the last success. */
  readonly failures: number;
  /** Open: when the probe may go. Half-open: when the probe in flight is presumed lost. */
  readonly nextProbeAt: string | null;
  readonly openedAt: string | null;
}

export interface BreakerPolicy {
  readonly threshold: number;
  readonly cooldownMs: number;
}

export const DEFAULT_BREAKER_POLICY: BreakerPolicy = { threshold: 10, cooldownMs: 30_000 };
export const closedBreaker: Breaker = { state: 'closed', failures: 0, nextProbeAt: null, openedAt: null };

/** What an attempt told about the destination: a failure is one the receiver may recover from (network, timeout, 429, 5xx). */
export type Health = 'up' | 'down';

export type Admission = 'send' | 'probe' | 'hold';

/**
 * Whether a due delivery may go now, given the attempts already in flight to its destination.
 * While closed, in-flight attempts plus failures never exceed the threshold, so a destination that
 * goes down sees at most `threshold` failing attempts before the circuit opens, however many are due.
 */
export function admit(breaker: Breaker, inFlight: number, now: Date, policy: BreakerPolicy): Admission {
  if (breaker.state === 'closed') {
    if (inFlight + breaker.failures < policy.threshold) return 'send';
    // Failures that reach a threshold lowered since they were counted: the circuit would be open by
    // now, and only an attempt can open it, so one goes as its probe (held, it would wait for ever).
    return breaker.failures >= policy.threshold && inFlight === 0 ? 'probe' : 'hold';
  }
  const probeDue = breaker.nextProbeAt === null || Date.parse(breaker.nextProbeAt) <= now.getTime();
  return probeDue && inFlight === 0 ? 'probe' : 'hold';
}

/**
 * The state after an attempt's outcome. A destination that asked for quiet (429 or 503 with
 * `Retry-After`, given here in ms) is left alone that long: its circuit opens at once, and its
 * probe waits for the time asked for (or the cool-down, when the failures alone open the circuit and
 * that is later).
 */
export function afterAttempt(breaker: Breaker, health: Health, now: Date, policy: BreakerPolicy, retryAfterMs = 0): Breaker {
  if (health === 'up') return closedBreaker;
  const failures = breaker.failures + 1;
  const failing = breaker.state !== 'closed' || failures >= policy.threshold;
  if (failing || retryAfterMs > 0) {
    return {
      state: 'open',
      failures,
      nextProbeAt: new Date(now.getTime() + (failing ? Math.max(policy.cooldownMs, retryAfterMs) : retryAfterMs)).toISOString(),
      openedAt: breaker.state === 'closed' ? now.toISOString() : (breaker.openedAt ?? now.toISOString()),
    };
  }
  return { ...breaker, failures };
}

/** The state while a probe is in flight; `probeLeaseUntil` bounds how long a lost probe blocks the next one. */
export function probing(breaker: Breaker, probeLeaseUntil: Date): Breaker {
  return { ...breaker, state: 'half_open', nextProbeAt: probeLeaseUntil.toISOString() };
}

export function parseBreakerPolicy(threshold: string | undefined, cooldownSeconds: string | undefined): BreakerPolicy {
  const t = threshold === undefined || threshold === '' ? DEFAULT_BREAKER_POLICY.threshold : Number(threshold);
  const c = cooldownSeconds === undefined || cooldownSeconds === '' ? DEFAULT_BREAKER_POLICY.cooldownMs / 1000 : Number(cooldownSeconds);
  if (!Number.isInteger(t) || t < 1 || t > 10_000)
    throw new Error(`ROUTING_BREAKER_THRESHOLD must be an integer from 1 to 10000 (got "${threshold}")`);
  if (!Number.isFinite(c) || c < 0 || c > 86_400)
    throw new Error(`ROUTING_BREAKER_COOLDOWN must be seconds between 0 and 86400 (got "${cooldownSeconds}")`);
  return { threshold: t, cooldownMs: Math.round(c * 1000) };
}
