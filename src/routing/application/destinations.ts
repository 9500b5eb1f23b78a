import type { Kysely } from 'kysely';
import type { Clock } from '../../shared/clock.js';
import { closedBreaker, type Breaker } from '../domain/circuit-breaker.js';
import type { AttemptObservation } from './delivery-worker.js';
import type { BreakerStoreFor, DeliveryStoreFor, RuleCatalog } from './ports.js';

/** Attempts to one destination since this process started. */
export interface AttemptTally {
  attempts: number;
  delivered: number;
  failed: number;
  totalDurationMs: number;
}

/** Counts attempts per rule in memory, for the destinations view (Prometheus keeps its own counters). */
export function attemptTallies() {
  const tallies = new Map<string, AttemptTally>();
  return {
    observe(attempt: AttemptObservation) {
      const tally = tallies.get(attempt.ruleId) ?? { attempts: 0, delivered: 0, failed: 0, totalDurationMs: 0 };
      tally.attempts++;
      if (attempt.outcome === 'delivered') tally.delivered++;
      else tally.failed++;
      tally.totalDurationMs += attempt.durationMs;
      tallies.set(attempt.ruleId, tally);
    },
    get: (ruleId: string) => tallies.get(ruleId),
  };
}

export interface DestinationView {
  readonly ruleId: string;
  readonly appId: string;
  readonly ruleName: string;
  readonly destinationType: string;
  readonly isActive: boolean;
  readonly circuit: Breaker;
  readonly pending: number;
  readonly tally: AttemptTally | undefined;
}

export interface DestinationDeps {
  readonly db: Kysely<object>;
  readonly clock: Clock;
  readonly catalog: RuleCatalog;
  readonly breakers: BreakerStoreFor;
  readonly deliveries: DeliveryStoreFor;
  readonly tally: (ruleId: string) => AttemptTally | undefined;
}

/** Every rule's destination with its circuit, its backlog and how its attempts went. */
export const listDestinations = (deps: DestinationDeps) => async (): Promise<DestinationView[]> => {
  const [rules, breakers, pending] = await Promise.all([
    deps.catalog.listAll(),
    deps.breakers(deps.db).all(),
    deps.deliveries(deps.db).pendingByRule(),
  ]);
  const byRule = new Map(breakers.map((b) => [b.ruleId, b.breaker]));
  return rules.map((rule) => ({
    ruleId: rule.rule_id,
    appId: rule.app_id,
    ruleName: rule.rule_name,
    destinationType: rule.destination_type,
    isActive: rule.is_active,
    circuit: byRule.get(rule.rule_id) ?? closedBreaker,
    pending: pending.get(rule.rule_id) ?? 0,
    tally: deps.tally(rule.rule_id),
  }));
};
