import { afterEach, describe, expect, it } from 'vitest';
import { adminCall, startTestIntake, type TestIntake } from '../../test/support/embedded-intake.js';
import { startWebhookReceiver, type WebhookReceiver } from '../../test/support/webhook-receiver.js';
import { storeRuleAsBefore } from '../../test/support/rule-stored-before.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function start(): Promise<{ intake: TestIntake; hooks: WebhookReceiver }> {
  const intake = await startTestIntake({ WEBHOOK_ALLOWED_HOSTS: '127.0.0.1' });
  cleanups.push(() => intake.dispose());
  const hooks = await startWebhookReceiver();
  cleanups.push(() => hooks.close());
  expect((await adminCall(intake, 'POST', '/api/applications', { name: 'Shop', app_id: 'shop' })).statusCode).toBe(201);
  return { intake, hooks };
}

const rule = (destination_config: object) => ({
  app_id: 'shop',
  rule_name: 'orders',
  event_type_filter: 'order_created',
  destination_type: 'webhook',
  destination_config,
});

describe('webhook headers Intake sets', () => {
  it('are refused when a rule is created or changed, naming the header', async () => {
    const { intake, hooks } = await start();

    const refused = await adminCall(intake, 'POST', '/api/routing-rules', rule({ url: hooks.url, headers: { Host: 'example.org' } }));
    expect(refused.statusCode).toBe(400);
    expect(refused.json()).toMatchObject({
      code: 'routing.invalid-destination',
      detail: 'destination_config.headers.Host is set by Intake on every webhook: remove it',
      errors: [{ path: 'destination_config.headers.Host' }],
    });

    const created = await adminCall(intake, 'POST', '/api/routing-rules', rule({ url: hooks.url, headers: { 'X-Team': 'shop' } }));
    expect(created.statusCode, created.body).toBe(201);
    const ruleId = created.json().rule_id as string;
    const patched = await adminCall(intake, 'PATCH', `/api/routing-rules/${ruleId}`, {
      destination_config: { url: hooks.url, headers: { 'Content-Length': '0' } },
    });
    expect(patched.statusCode).toBe(400);
    expect(patched.json().errors).toEqual([expect.objectContaining({ path: 'destination_config.headers.Content-Length' })]);
  });

  it('stored on a rule before they were refused, are dropped when sending, and refused only when the destination changes', async () => {
    const { intake, hooks } = await start();
    const ruleId = '0193aaaa-0000-7000-8000-000000000002';
    const destination_config = { url: hooks.url, headers: { 'Content-Type': 'text/plain', 'X-Team': 'shop' } };
    await storeRuleAsBefore(intake, ruleId, { ...rule(destination_config), destination_type: 'webhook', destination_config });

    const shown = await adminCall(intake, 'GET', `/api/routing-rules/${ruleId}`);
    expect(shown.statusCode).toBe(200);
    expect((await adminCall(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: {} })).statusCode).toBe(201);
    const [delivered] = await hooks.waitFor(1);
    expect(delivered?.headers['content-type']).toBe('application/json');
    expect(delivered?.headers['x-team']).toBe('shop');

    // Its name, condition or state change as before; the header goes when its destination changes.
    const renamed = await adminCall(intake, 'PATCH', `/api/routing-rules/${ruleId}`, { rule_name: 'renamed' });
    expect(renamed.statusCode, renamed.body).toBe(200);
    const replaced = await adminCall(intake, 'PUT', `/api/routing-rules/${ruleId}`, { ...(shown.json() as object), priority: 2 });
    expect(replaced.statusCode, replaced.body).toBe(200);
    const { headers } = shown.json().destination_config as { headers: Record<string, string> };
    const changed = await adminCall(intake, 'PATCH', `/api/routing-rules/${ruleId}`, {
      destination_config: { url: hooks.url, headers: { ...headers, 'X-Region': 'eu' } },
    });
    expect(changed.statusCode).toBe(400);
    expect(changed.json().errors).toEqual([expect.objectContaining({ path: 'destination_config.headers.Content-Type' })]);
  });
});
