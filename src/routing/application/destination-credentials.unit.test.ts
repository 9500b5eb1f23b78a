import { describe, expect, it } from 'vitest';
import type { DestinationConfig, DestinationType } from '../domain/destination-config.js';
import type { DeliveryRequest, QueuePublisher, QueueTarget, WebhookSender, WebhookTarget } from './destination.js';
import { revealedDestination, sealedDestination, sendWithCredentials } from './destination-credentials.js';
import type { SecretVault, StoredRule } from './ports.js';

const REF_A = `sealed_${'a'.repeat(32)}`;
const REF_B = `sealed_${'b'.repeat(32)}`;
const stored = (destination_type: DestinationType, destination_config: DestinationConfig): StoredRule => ({
  rule_id: 'r1',
  app_id: 'shop',
  rule_name: 'r',
  event_type_filter: null,
  condition: {},
  destination_type,
  destination_config,
  priority: 0,
  is_active: true,
  ordering_key: null,
  created_at: '2026-12-01T00:00:00.000Z',
  updated_at: '2026-12-01T00:00:00.000Z',
});

/** A vault in memory: its values by reference, its signing secrets in force. */
function vault(values: Record<string, string>, secrets: string[] = ['whsec_bmV3']): SecretVault {
  return {
    get: () => Promise.resolve(secrets[0]),
    signingSecrets: () => Promise.resolve(secrets),
    set: () => Promise.resolve(),
    openValues: (_ruleId, refs) => Promise.resolve(new Map(refs.flatMap((ref) => (values[ref] ? [[ref, values[ref]] as const] : [])))),
    sealValues: () => Promise.resolve(),
  };
}

const request: DeliveryRequest = { deliveryId: 'd1', attempt: 1, body: '{}', eventId: 'e1', appId: 'shop', eventType: 't' };
const delivered = { outcome: 'delivered', durationMs: 1 } as const;
function senders() {
  const sent: { webhooks: WebhookTarget[]; queues: QueueTarget[] } = { webhooks: [], queues: [] };
  const webhooks: WebhookSender = {
    send: (target) => (sent.webhooks.push(target), Promise.resolve(delivered)),
    close: () => Promise.resolve(),
  };
  const queues: QueuePublisher = {
    publish: (target) => (sent.queues.push(target), Promise.resolve(delivered)),
    close: () => Promise.resolve(),
  };
  return { sent, webhooks, queues };
}

describe('sealed destination credentials', () => {
  it('keeps the reference of an unchanged credential and seals a changed one under a new one', () => {
    const before = stored('webhook', { url: 'http://h/', headers: { Authorization: REF_A, 'X-Old': 'clear' } });
    const clear = stored('webhook', { url: 'http://h/', headers: { Authorization: 'Bearer 1', 'X-Old': 'clear' } });
    const next = stored('webhook', { url: 'http://h/', headers: { Authorization: 'Bearer 1', 'X-Old': 'clear' } });
    const sealed = sealedDestination(next, { stored: before, clear }, () => REF_B);
    // Saved in clear before sealing existed: sealed at this change.
    expect(sealed.destination.destination_config).toEqual({ url: 'http://h/', headers: { Authorization: REF_A, 'X-Old': REF_B } });
    expect(sealed.values).toEqual({ [REF_B]: 'clear' });
    const changed = stored('webhook', { url: 'http://h/', headers: { Authorization: 'Bearer 2' } });
    expect(sealedDestination(changed, { stored: before, clear }, () => REF_B).values).toEqual({ [REF_B]: 'Bearer 2' });
  });

  it('sends the real broker URL and header values, signing with every secret in force', async () => {
    const { sent, webhooks, queues } = senders();
    const queueRule = stored('queue', { broker: 'redis', url: `redis://:${REF_A}@127.0.0.1:6379/5`, stream: 's' });
    await sendWithCredentials({ vault: vault({ [REF_A]: 'hunter2pass' }), webhooks, queues }, queueRule, request, '2026-12-01T00:00:00Z');
    expect(sent.queues).toEqual([{ broker: 'redis', url: 'redis://:hunter2pass@127.0.0.1:6379/5', stream: 's' }]);

    const hookRule = stored('webhook', { url: 'http://h/', headers: { Authorization: REF_A } });
    const secrets = vault({ [REF_A]: 'Bearer SUPERSECRET123' }, ['whsec_bmV3', 'whsec_b2xk']);
    await sendWithCredentials({ vault: secrets, webhooks, queues }, hookRule, request, '2026-12-01T00:00:00Z');
    expect(sent.webhooks).toEqual([
      {
        url: 'http://h/',
        headers: { Authorization: 'Bearer SUPERSECRET123' },
        signingSecret: 'whsec_bmV3',
        previousSigningSecret: 'whsec_b2xk',
      },
    ]);
  });

  it('sends nothing when a sealed credential is not there, naming it', async () => {
    const { sent, webhooks, queues } = senders();
    const rule = stored('webhook', { url: 'http://h/', headers: { Authorization: REF_A } });
    expect(await revealedDestination(vault({}), 'r1', rule)).toMatchObject({ missing: ['headers.Authorization'] });
    const outcome = await sendWithCredentials({ vault: vault({}), webhooks, queues }, rule, request, '2026-12-01T00:00:00Z');
    expect(outcome).toMatchObject({ outcome: 'rejected', reason: expect.stringContaining('headers.Authorization') });
    expect(sent.webhooks).toEqual([]);
  });
});
