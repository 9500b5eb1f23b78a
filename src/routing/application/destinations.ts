import type { Kysely } from 'kysely';
import { mapYielding } from '../../shared/yielding.js';
import type { Clock } from '../../shared/clock.js';
import { MAX_PAGE_SIZE, type Page, type PageRequest } from '../../shared/pagination.js';
import { closedBreaker, type Breaker } from '../domain/circuit-breaker.js';
import type { ConditionErrorOf } from './condition-errors.js';
import { destinationKeyOfRule } from './destination-key.js';
import type { AttemptTally, BreakerStoreFor, DeliveryStoreFor, RuleCatalog, TallyStoreFor } from './ports.js';

export interface DestinationView {
  readonly ruleId: string;
  readonly appId: string;
  readonly ruleName: string;
  readonly destinationType: string;
  /** The rule's own switch. A rule whose condition cannot run is still active: it sends what it matched before. */
  readonly isActive: boolean;
  /** Why the rule's condition cannot run under today's limits (it matches no new event), or null. */
  readonly conditionError: string | null;
  readonly circuit: Breaker;
  readonly pending: number;
  /** Attempts to the rule's current destination: since the rule was made, or since its destination last changed. */
  readonly tally: AttemptTally | undefined;
}

export interface DestinationDeps {
  readonly db: Kysely<object>;
  readonly clock: Clock;
  readonly catalog: RuleCatalog;
  readonly breakers: BreakerStoreFor;
  readonly deliveries: DeliveryStoreFor;
  readonly tallies: TallyStoreFor;
  readonly conditionError: ConditionErrorOf;
}

/** A page of rules' destinations (by rule id) with their circuit, backlog and how their attempts went. */
export const listDestinations =
  (deps: DestinationDeps) =>
  async (page: PageRequest): Promise<Page<DestinationView>> => {
    const rules = await deps.catalog.listAll(page);
    const ids = rules.items.map((rule) => rule.rule_id);
    const [breakers, pending, tallies] = await Promise.all([
      deps.breakers(deps.db).get(ids),
      deps.deliveries(deps.db).pendingByRule(ids),
      deps.tallies(deps.db).get(rules.items.map((rule) => ({ ruleId: rule.rule_id, destination: destinationKeyOfRule(rule) }))),
    ]);
    // Each rule's condition is checked (cold, a rule of large patterns takes milliseconds).
    const items = await mapYielding(rules.items, (rule) => ({
      ruleId: rule.rule_id,
      appId: rule.app_id,
      ruleName: rule.rule_name,
      destinationType: rule.destination_type,
      isActive: rule.is_active,
      conditionError: deps.conditionError(rule),
      circuit: breakers.get(rule.rule_id) ?? closedBreaker,
      pending: pending.get(rule.rule_id) ?? 0,
      tally: tallies.get(rule.rule_id),
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
