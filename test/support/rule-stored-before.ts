import { sql } from 'kysely';
import { ruleStreamId, type RoutingRuleCreated } from '../../src/routing/domain/routing-rule.js';
import type { TestIntake } from './embedded-intake.js';

interface Given {
  readonly app_id: string;
  readonly rule_name: string;
  readonly event_type_filter: string | null;
  readonly destination_type: string;
  readonly destination_config: object;
}

/**
 * Stores a rule as an earlier release did, past today's checks: its creation event as given (a
 * credential in clear, a header now refused) and a signing secret. What a database carried over
 * from before holds.
 */
export async function storeRuleAsBefore(intake: TestIntake, ruleId: string, given: Given): Promise<void> {
  const data = {
    ...given,
    condition: {},
    priority: 0,
    is_active: true,
    ordering_key: null,
    rule_id: ruleId,
    created_at: new Date().toISOString(),
  } as RoutingRuleCreated['data'];
  await intake.store.transaction(async (tx) => {
    await tx.append({ streamId: ruleStreamId(ruleId), events: [{ type: 'RoutingRuleCreated', data }], expectedVersion: 'no_stream' });
    await sql`INSERT INTO routing_secrets (rule_id, secret) VALUES (${ruleId}, 'whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3')`.execute(tx.db);
  });
}
