import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { auth, startTestIntake, type TestIntake } from '../support/embedded-intake.js';
import { sleep, startScriptedReceiver, type Script, type ScriptedReceiver, type ScriptedRequest } from '../support/scripted-receiver.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const BASE_ENV = { WEBHOOK_ALLOWED_HOSTS: '127.0.0.1', WEBHOOK_RETRY_SCHEDULE: '0.02,0.02,0.02,0.02' };

async function start(env: Record<string, string> = {}): Promise<TestIntake> {
  const intake = await startTestIntake({ ...BASE_ENV, ...env });
  cleanups.push(() => intake.dispose());
  expect((await call(intake, 'POST', '/api/applications', { name: 'Shop', app_id: 'shop' })).statusCode).toBe(201);
  return intake;
}
async function receiver(script?: Script): Promise<ScriptedReceiver> {
  const r = await startScriptedReceiver(script);
  cleanups.push(() => r.close());
  return r;
}

const call = (intake: TestIntake, method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: unknown) =>
  intake.app.inject({
    method,
    url,
    headers: payload === undefined ? auth : { ...auth, 'content-type': 'application/json' },
    ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }),
  });

async function rule(intake: TestIntake, url: string, extra: Record<string, unknown> = {}) {
  const created = await call(intake, 'POST', '/api/routing-rules', {
    app_id: 'shop',
    rule_name: 'hooks',
    destination_type: 'webhook',
    destination_config: { url },
    ...extra,
  });
  expect(created.statusCode, created.body).toBe(201);
  return created.json() as { rule_id: string; signing_secret: string; ordering_key: string | null };
}

async function ingest(intake: TestIntake, payloads: object[], eventType = 'order_created'): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < payloads.length; i += 500) {
    const response = await call(intake, 'POST', '/api/ingest/shop/batch', {
      events: payloads.slice(i, i + 500).map((payload) => ({ event_type: eventType, payload })),
    });
    expect(response.statusCode, response.body).toBe(200);
    ids.push(...(response.json().results as Array<{ event_id: string }>).map((r) => r.event_id));
  }
  return ids;
}

const payloadOf = (request: ScriptedRequest) => (JSON.parse(request.body) as { data: { payload: Record<string, unknown> } }).data.payload;

async function until<T>(probe: () => Promise<T>, accept: (value: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (accept(value)) return value;
    if (Date.now() > deadline) throw new Error(`condition not reached: ${JSON.stringify(value).slice(0, 500)}`);
    await sleep(20);
  }
}

describe('ordered delivery per key', () => {
  it('sends each key in log order through a slow, sometimes failing receiver, and different keys in parallel', async () => {
    const intake = await start({ ROUTING_BREAKER_THRESHOLD: '100' });
    const failedOnce = new Set<number>();
    const hooks = await receiver(async (request) => {
      const seq = Number(payloadOf(request).seq);
      await sleep(5 + (seq % 4) * 5);
      if (seq % 10 === 3 && !failedOnce.has(seq)) {
        failedOnce.add(seq);
        return 500;
      }
      return 200;
    });
    const created = await rule(intake, hooks.url, { ordering_key: 'payload.customer' });
    expect(created.ordering_key).toBe('payload.customer');

    const keys = ['c1', 'c2', 'c3', 'c4', 'c5'];
    await ingest(
      intake,
      Array.from({ length: 200 }, (_, seq) => ({ seq, customer: keys[(seq * 7) % 5] })),
    );
    await hooks.waitFor((all) => new Set(all.filter((r) => r.status === 200).map((r) => payloadOf(r).seq)).size === 200, 60_000);

    for (const key of keys) {
      const seen = hooks.requests.filter((r) => payloadOf(r).customer === key).map((r) => Number(payloadOf(r).seq));
      // A retry repeats its event before the next one goes: collapsing repeats leaves the log order.
      const collapsed = seen.filter((seq, i) => seen[i - 1] !== seq);
      expect(collapsed).toEqual([...collapsed].sort((a, b) => a - b));
      expect(new Set(collapsed).size).toBe(collapsed.length);
      expect(collapsed).toHaveLength(40);
    }
    expect(failedOnce.size).toBe(20);
    expect(hooks.maxConcurrent).toBeGreaterThan(1);
  }, 90_000);

  it.each([
    ['a path outside the event', 'customer_id'],
    ['the whole payload', 'payload'],
    ['an empty segment', 'payload..id'],
    ['a metadata field Intake never records', 'metadata.customer'],
    ['a path below a string', 'event_type.x'],
  ])('refuses %s as ordering_key with 400 and stores nothing', async (_name, orderingKey) => {
    const intake = await start();
    const response = await call(intake, 'POST', '/api/routing-rules', {
      app_id: 'shop',
      rule_name: 'r',
      destination_type: 'database',
      destination_config: { table: 't_order' },
      ordering_key: orderingKey,
    });
    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(response.json().code).toBe('routing.invalid-ordering-key');
    expect((await call(intake, 'GET', '/api/routing-rules/app/shop')).json().items).toEqual([]);
  });
});

describe('circuit breaker per destination', () => {
  it('stops sending to a destination that is down, probes it, and delivers every event once it is back', async () => {
    // Three attempts per delivery at most: without the breaker, a 1.5 s outage would dead-letter them all.
    const intake = await start({
      WEBHOOK_RETRY_SCHEDULE: '0.05,0.05',
      ROUTING_BREAKER_THRESHOLD: '3',
      ROUTING_BREAKER_COOLDOWN: '0.3',
    });
    let down = true;
    const hooks = await receiver(() => (down ? 503 : 200));
    const created = await rule(intake, hooks.url);
    await ingest(
      intake,
      Array.from({ length: 20 }, (_, seq) => ({ seq })),
    );

    const open = await until(
      async () => (await call(intake, 'GET', '/api/routing/destinations')).json().items as Array<Record<string, unknown>>,
      (items) => (items[0]?.circuit as { state: string } | undefined)?.state === 'open',
    );
    expect(open[0]).toMatchObject({
      rule_id: created.rule_id,
      circuit: { state: 'open', failures: expect.any(Number), next_probe_at: expect.any(String) },
      pending: 20,
    });
    const metrics = (await intake.app.inject({ method: 'GET', url: '/metrics', headers: auth })).body;
    expect(metrics).toMatch(/intake_circuits_open 1/);
    expect(metrics).toContain(`intake_circuit_state{rule_id="${created.rule_id}"} 2`);

    const downSince = Date.now();
    await sleep(1500);
    const whileDown = hooks.requests.length;
    down = false;
    const downFor = Date.now() - downSince;

    await hooks.waitFor((all) => new Set(all.filter((r) => r.status === 200).map((r) => r.webhookId)).size === 20);
    await sleep(300);
    const probes = Math.ceil(downFor / 300) + 1;
    expect(whileDown).toBeLessThanOrEqual(3 + probes);
    const delivered = hooks.requests.filter((r) => r.status === 200).map((r) => r.webhookId);
    expect(delivered).toHaveLength(20);
    expect(new Set(delivered).size).toBe(20);
    const dead = (await call(intake, 'GET', `/api/routing/dead-letters?rule_id=${created.rule_id}`)).json().items;
    expect(dead).toEqual([]);
    const after = (await call(intake, 'GET', '/api/routing/destinations')).json().items[0];
    expect(after).toMatchObject({ circuit: { state: 'closed', failures: 0 }, pending: 0 });
    expect(after.success_rate).toBeGreaterThan(0);
  }, 60_000);
});

describe('test send', () => {
  it('sends a signed test event and answers the receiver’s status and latency', async () => {
    const intake = await start();
    const hooks = await receiver(() => 202);
    const created = await rule(intake, hooks.url);
    const response = await call(intake, 'POST', `/api/routing-rules/${created.rule_id}/test`);
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ delivered: true, outcome: 'delivered', status_code: 202, latency_ms: expect.any(Number) });
    const [request] = hooks.requests;
    const verified = new Webhook(created.signing_secret).verify(request?.body ?? '', {
      'webhook-id': String(request?.headers['webhook-id']),
      'webhook-timestamp': String(request?.headers['webhook-timestamp']),
      'webhook-signature': String(request?.headers['webhook-signature']),
    }) as { type: string; data: { rule_id: string } };
    expect(verified).toMatchObject({ type: 'intake.test', data: { rule_id: created.rule_id } });
    expect((await call(intake, 'GET', `/api/routing/deliveries?rule_id=${created.rule_id}`)).json().items).toEqual([]);

    hooks.setScript(() => 500);
    expect((await call(intake, 'POST', `/api/routing-rules/${created.rule_id}/test`)).json()).toMatchObject({
      delivered: false,
      status_code: 500,
    });
    expect((await call(intake, 'POST', '/api/routing-rules/nope/test')).statusCode).toBe(404);
  });
});
