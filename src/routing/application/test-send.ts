import type { Kysely } from 'kysely';
import type { Clock } from '../../shared/clock.js';
import { NotFoundError, ValidationError } from '../../shared/errors.js';
import type { IdGenerator } from '../../shared/ids.js';
import { sendWithCredentials } from './destination-credentials.js';
import type { DeliveryOutcome, DeliveryRequest, QueuePublisher, WebhookSender } from './destination.js';
import type { RuleCatalog, SecretVaultFor } from './ports.js';

export interface TestSendDeps {
  readonly db: Kysely<object>;
  readonly clock: Clock;
  readonly newId: IdGenerator;
  readonly catalog: RuleCatalog;
  readonly vault: SecretVaultFor;
  readonly webhooks: WebhookSender;
  readonly queues: QueuePublisher;
}

export interface TestSendResult {
  readonly messageId: string;
  readonly outcome: DeliveryOutcome;
}

/**
 * Sends one signed test event to a rule's destination, outside the delivery queue: no retry, no
 * effect on the circuit breaker, nothing in the log. A disabled rule may be tested too.
 */
export const testSend =
  (deps: TestSendDeps) =>
  async (ruleId: string): Promise<TestSendResult> => {
    const rule = await deps.catalog.get(ruleId);
    if (!rule) throw new NotFoundError('routing.rule-not-found', `no routing rule ${ruleId}`);
    const at = deps.clock.now().toISOString();
    const messageId = `msg_test_${deps.newId().replaceAll('-', '')}`;
    const request: DeliveryRequest = {
      deliveryId: messageId,
      attempt: 1,
      eventId: messageId,
      appId: rule.app_id,
      eventType: 'intake.test',
      body: JSON.stringify({
        type: 'intake.test',
        timestamp: at,
        data: { test: true, rule_id: rule.rule_id, app_id: rule.app_id, sent_at: at },
      }),
    };
    const vault = deps.vault(deps.db);
    switch (rule.destination_type) {
      case 'webhook':
        if (!(await vault.get(rule.rule_id)))
          throw new ValidationError('routing.no-signing-secret', `rule ${ruleId} has no signing secret`);
        return { messageId, outcome: await sendWithCredentials({ ...deps, vault }, rule, request, at) };
      case 'queue':
        return { messageId, outcome: await sendWithCredentials({ ...deps, vault }, rule, request, at) };
      case 'database':
        throw new ValidationError(
          'routing.test-unsupported',
          'a database destination is a table of this service: there is nothing to test',
        );
    }
  };
