import { Writable } from 'node:stream';
import { sql } from 'kysely';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { adminCall, startTestIntake, type TestIntake } from '../../test/support/embedded-intake.js';
import { startWebhookReceiver, type WebhookReceiver } from '../../test/support/webhook-receiver.js';
import { storeRuleAsBefore } from '../../test/support/rule-stored-before.js';
import { SECRET_MASK } from './domain/destination-secrets.js';

const HEADER_SECRET = 'Bearer SUPERSECRET123';
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** An Intake whose every log line is kept, to look for credentials in. */
async function start(): Promise<{ intake: TestIntake; logs: string[] }> {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(chunk.toString('utf8'));
      done();
    },
  });
  const intake = await startTestIntake(
    { WEBHOOK_ALLOWED_HOSTS: '127.0.0.1', WEBHOOK_RETRY_SCHEDULE: '0.05,0.05' },
    { logger: pino({ level: 'trace' }, sink) },
  );
  cleanups.push(() => intake.dispose());
  expect((await adminCall(intake, 'POST', '/api/applications', { name: 'Shop', app_id: 'shop' })).statusCode).toBe(201);
  return { intake, logs };
}

async function receiver(): Promise<WebhookReceiver> {
  const hooks = await startWebhookReceiver();
  cleanups.push(() => hooks.close());
  return hooks;
}

/** Rows of the log and of the rules table whose text holds `value`. */
const storedCopies = (intake: TestIntake, value: string) =>
  intake.store.transaction(async (tx) => {
    const events = await sql<{ n: number }>`SELECT count(*) AS n FROM events WHERE data LIKE ${`%${value}%`}`.execute(tx.db);
    const rules = await sql<{ n: number }>`SELECT count(*) AS n FROM routing_rules WHERE rule LIKE ${`%${value}%`}`.execute(tx.db);
    return { events: Number(events.rows[0]?.n), rules: Number(rules.rows[0]?.n) };
  });

const rule = (destination_type: string, destination_config: object) => ({
  app_id: 'shop',
  rule_name: 'orders',
  event_type_filter: 'order_created',
  destination_type,
  destination_config,
});

describe('credentials in destination configs', () => {
  it('seals webhook header values: masked in every answer, never in the log, the rules table or the logs, sent as they are', async () => {
    const { intake, logs } = await start();
    const hooks = await receiver();
    const created = await adminCall(
      intake,
      'POST',
      '/api/routing-rules',
      rule('webhook', { url: hooks.url, headers: { Authorization: HEADER_SECRET } }),
    );
    expect(created.statusCode, created.body).toBe(201);
    const ruleId = created.json().rule_id as string;
    expect(created.json().destination_config).toEqual({ url: hooks.url, headers: { Authorization: SECRET_MASK } });

    // Shown, edited and sent back as shown: the mask keeps the credential.
    const shown = (await adminCall(intake, 'GET', `/api/routing-rules/${ruleId}`)).json();
    const replaced = await adminCall(intake, 'PUT', `/api/routing-rules/${ruleId}`, { ...shown, rule_name: 'renamed' });
    expect(replaced.statusCode, replaced.body).toBe(200);
    const patched = await adminCall(intake, 'PATCH', `/api/routing-rules/${ruleId}`, {
      destination_config: { url: hooks.url, headers: { Authorization: SECRET_MASK, 'X-Team': 'shop' } },
    });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(patched.json().destination_config.headers).toEqual({ Authorization: SECRET_MASK, 'X-Team': SECRET_MASK });

    expect((await adminCall(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: {} })).statusCode).toBe(201);
    const [delivered] = await hooks.waitFor(1);
    expect(delivered?.headers.authorization).toBe(HEADER_SECRET);
    expect(delivered?.headers['x-team']).toBe('shop');
    expect((await adminCall(intake, 'POST', `/api/routing-rules/${ruleId}/test`)).statusCode).toBe(200);
    expect((await hooks.waitFor(2))[1]?.headers.authorization).toBe(HEADER_SECRET);

    const answers = [
      created.body,
      replaced.body,
      patched.body,
      (await adminCall(intake, 'GET', `/api/routing-rules/${ruleId}`)).body,
      (await adminCall(intake, 'GET', '/api/routing-rules/app/shop')).body,
      (await adminCall(intake, 'PATCH', `/api/routing-rules/${ruleId}/toggle`)).body,
    ];
    for (const answer of answers) expect(answer).not.toContain('SUPERSECRET123');
    expect(await storedCopies(intake, 'SUPERSECRET123')).toEqual({ events: 0, rules: 0 });
    expect(logs.join('')).not.toContain('SUPERSECRET123');
  });

  it('seals the value of a webhook URL’s credential parameter (?token=): masked in answers, stored nowhere, sent as given', async () => {
    const { intake, logs } = await start();
    const hooks = await receiver();
    const url = `${hooks.url}?team=shop&token=URLSECRET42&sig=`;
    const created = await adminCall(intake, 'POST', '/api/routing-rules', rule('webhook', { url }));
    expect(created.statusCode, created.body).toBe(201);
    const ruleId = created.json().rule_id as string;
    expect(created.json().destination_config).toEqual({ url: `${hooks.url}?team=shop&token=${SECRET_MASK}&sig=` });

    // Sent back as shown, the mask keeps it; under another address it is refused.
    const shown = (await adminCall(intake, 'GET', `/api/routing-rules/${ruleId}`)).json();
    expect((await adminCall(intake, 'PUT', `/api/routing-rules/${ruleId}`, { ...shown, rule_name: 'renamed' })).statusCode).toBe(200);
    const moved = await adminCall(intake, 'PATCH', `/api/routing-rules/${ruleId}`, {
      destination_config: { url: `${hooks.url.replace('/hooks', '/other')}?team=shop&token=${encodeURIComponent(SECRET_MASK)}&sig=` },
    });
    expect(moved.statusCode).toBe(400);
    expect(moved.json().errors).toEqual([expect.objectContaining({ path: 'destination_config.url.query.token' })]);

    expect((await adminCall(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: {} })).statusCode).toBe(201);
    const [delivered] = await hooks.waitFor(1);
    expect(delivered?.url).toBe('/hooks?team=shop&token=URLSECRET42&sig=');
    const answers = [created.body, (await adminCall(intake, 'GET', '/api/routing-rules/app/shop')).body];
    for (const answer of answers) expect(answer).not.toContain('URLSECRET42');
    expect(await storedCopies(intake, 'URLSECRET42')).toEqual({ events: 0, rules: 0 });
    expect(logs.join('')).not.toContain('URLSECRET42');
  });

  it('seals the password of a queue broker’s URL and masks it in answers', async () => {
    const { intake } = await start();
    for (const [broker, url, extra] of [
      ['redis', 'redis://:hunter2pass@127.0.0.1:6379/5', { stream: 's' }],
      ['rabbitmq', 'amqp://guest:hunter2pass@127.0.0.1:5672/', { exchange: 'x', routing_key: 'k' }],
    ] as const) {
      const created = await adminCall(intake, 'POST', '/api/routing-rules', rule('queue', { broker, url, ...extra }));
      expect(created.statusCode, created.body).toBe(201);
      const masked = url.replace('hunter2pass', SECRET_MASK);
      expect(created.json().destination_config.url).toBe(masked);
      const ruleId = created.json().rule_id as string;
      const shown = (await adminCall(intake, 'GET', `/api/routing-rules/${ruleId}`)).json();
      expect(shown.destination_config.url).toBe(masked);
      const replaced = await adminCall(intake, 'PUT', `/api/routing-rules/${ruleId}`, { ...shown, priority: 3 });
      expect(replaced.statusCode, replaced.body).toBe(200);
      expect(replaced.json().destination_config.url).toBe(masked);
    }
    expect(await storedCopies(intake, 'hunter2pass')).toEqual({ events: 0, rules: 0 });
  });

  it('refuses a mask for a credential the rule does not have', async () => {
    const { intake } = await start();
    const hooks = await receiver();
    const refused = await adminCall(
      intake,
      'POST',
      '/api/routing-rules',
      rule('webhook', { url: hooks.url, headers: { Authorization: SECRET_MASK } }),
    );
    expect(refused.statusCode).toBe(400);
    expect(refused.json()).toMatchObject({
      code: 'routing.invalid-destination',
      errors: [{ path: 'destination_config.headers.Authorization' }],
    });
  });

  it('keeps a rule saved in clear before sealing existed working, masks it, and seals it at its next change', async () => {
    const { intake } = await start();
    const hooks = await receiver();
    const ruleId = '0193aaaa-0000-7000-8000-000000000001';
    await storeRuleAsBefore(intake, ruleId, rule('webhook', { url: hooks.url, headers: { Authorization: HEADER_SECRET } }));
    const shown = await adminCall(intake, 'GET', `/api/routing-rules/${ruleId}`);
    expect(shown.json().destination_config.headers).toEqual({ Authorization: SECRET_MASK });
    expect((await adminCall(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: {} })).statusCode).toBe(201);
    expect((await hooks.waitFor(1))[0]?.headers.authorization).toBe(HEADER_SECRET);

    const replaced = await adminCall(intake, 'PUT', `/api/routing-rules/${ruleId}`, {
      ...(shown.json() as object),
      rule_name: 'sealed now',
    });
    expect(replaced.statusCode, replaced.body).toBe(200);
    expect(await storedCopies(intake, 'SUPERSECRET123')).toEqual({ events: 1, rules: 0 });
    expect((await adminCall(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: {} })).statusCode).toBe(201);
    expect((await hooks.waitFor(2))[1]?.headers.authorization).toBe(HEADER_SECRET);
  });
});
