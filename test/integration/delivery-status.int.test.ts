import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/app/config.js';
import { buildEmbedded, type Intake } from '../../src/app/embedded.js';
import { digestOf } from '../../src/shared/secrets.js';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';

const auth = { authorization: 'Bearer status-words' };
const logLines: Array<Record<string, unknown>> = [];
let dir: string;
let intake: Intake;
let hooks: WebhookReceiver;
let ruleId: string;
let signingSecret: string;
let eventId: string;

const call = (method: 'GET' | 'POST', url: string, payload?: object) =>
  intake.app.inject({ method, url, headers: auth, ...(payload ? { payload } : {}) });

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'intake-status-'));
  hooks = await startWebhookReceiver();
  hooks.respondWith(503);
  const config = loadConfig({
    DATABASE_URL: `sqlite:${join(dir, 'intake.db')}`,
    ADMIN_TOKEN: 'status-words',
    WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
    // The second attempt is an hour away: the delivery stays `retrying` for the whole test.
    WEBHOOK_RETRY_SCHEDULE: '3600',
  });
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) logLines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  intake = await buildEmbedded({ config, logger: pino({ level: 'info' }, sink), adminDigest: digestOf('status-words') });
  await call('POST', '/api/applications', { name: 'Shop', app_id: 'shop' });
  const rule = await call('POST', '/api/routing-rules', {
    app_id: 'shop',
    rule_name: 'all orders',
    destination_type: 'webhook',
    destination_config: { url: `${hooks.url}?token=in-the-query-string` },
  });
  ruleId = rule.json().rule_id;
  signingSecret = rule.json().signing_secret;
  eventId = (await call('POST', '/api/ingest/shop', { event_type: 'order', payload: {} })).json().data.event_id;
  await hooks.waitFor(1);
});

afterAll(async () => {
  await intake?.close();
  await hooks?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('a delivery waiting for its next attempt', () => {
  it('is `retrying` in the routing API, filterable by that word', async () => {
    const [delivery] = await until(
      async () =>
        (await call('GET', `/api/routing/deliveries?rule_id=${ruleId}`)).json().items as Array<{ status: string; attempts: number }>,
      (items) => items[0]?.attempts === 1,
    );
    expect(delivery).toMatchObject({ status: 'retrying', attempts: 1 });
    expect((await call('GET', '/api/routing/deliveries?status=retrying')).json().items).toHaveLength(1);
    expect((await call('GET', '/api/routing/deliveries?status=pending')).json().items).toHaveLength(0);
  });

  it('is `retrying` in the event view too', async () => {
    const event = await until(
      async () => (await call('GET', `/api/events/${eventId}`)).json() as { routing?: { deliveries: Array<{ attempts: number }> } },
      (body) => body.routing?.deliveries[0]?.attempts === 1,
    );
    expect(event.routing?.deliveries).toEqual([expect.objectContaining({ status: 'retrying', attempts: 1, last_error: 'HTTP 503' })]);
  });

  it('was logged at warn with the rule, the host and the status, and no secret', async () => {
    const line = await until(
      async () => logLines.find((l) => l.msg === 'delivery failed; it will be retried'),
      (found) => found !== undefined,
    );
    expect(line).toMatchObject({ level: 40, rule_id: ruleId, host: new URL(hooks.url).host, status_code: 503, attempt: 1 });
    const everything = JSON.stringify(logLines);
    expect(everything).not.toContain('in-the-query-string');
    expect(everything).not.toContain(signingSecret);
  });
});
