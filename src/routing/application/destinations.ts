import type { Kysely } from 'kysely';
import type { Clock } from '../../shared/clock.js';
import { MAX_PAGE_SIZE, type Page, type PageRequest } from '../../shared/pagination.js';
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

/** A page of rules' destinations (by rule id) with their circuit, backlog and how their attempts went. */
export const listDestinations =
  (deps: DestinationDeps) =>
  async (page: PageRequest): Promise<Page<DestinationView>> => {
    const rules = await deps.catalog.listAll(page);
    const ids = rules.items.map((rule) => rule.rule_id);
    const [breakers, pending] = await Promise.all([deps.breakers(deps.db).get(ids), deps.deliveries(deps.db).pendingByRule(ids)]);
    const items = rules.items.map((rule) => ({
      ruleId: rule.rule_id,
      appId: rule.app_id,
      ruleName: rule.rule_name,
      destinationType: rule.destination_type,
      isActive: rule.is_active,
      circuit: breakers.get(rule.rule_id) ?? closedBreaker,
      pending: pending.get(rule.rule_id) ?? 0,
      tally: deps.tally(rule.rule_id),
    }));
    return { items, nextCursor: rules.nextCursor };
  };

/** Every destination, page by page (for a metrics scrape). */
export async function allDestinations(list: ReturnType<typeof listDestinations>): Promise<DestinationView[]> {
  const all: DestinationView[] = [];
  let cursor: string | null = null;
  do {
    const page: Page<DestinationView> = await list({ limit: MAX_PAGE_SIZE, ...(cursor !== null ? { cursor } : {}) });
    all.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return all;
}
