import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { adminCall, auth, startTestIntake, type TestIntake } from '../support/embedded-intake.js';
import { backends, startIntakeOn } from '../support/paging.js';
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

const call = adminCall;

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

/** The `seq` of each event a receiver answered 200 to, in order. */
const deliveredSeqs = (hooks: ScriptedReceiver) =>
  hooks.requests
    .filter((r) => r.status === 200)
    .map((r) => payloadOf(r).seq)
    .sort();

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

  it.each(backends)(
    'delivers events whose key value is several KB, kept as its digest, on %s',
    async (backend) => {
      const intake = await startIntakeOn(backend, BASE_ENV);
      cleanups.push(() => intake.dispose());
      expect((await call(intake, 'POST', '/api/applications', { name: 'Shop', app_id: 'shop' })).statusCode).toBe(201);
      const hooks = await receiver();
      await rule(intake, hooks.url, { ordering_key: 'payload.customer' });
      // PostgreSQL refuses an index row past 2,704 bytes: the key once failed the event's whole routing.
      const [long, other] = ['a', 'b'].map((c) => c.repeat(6_000));
      await ingest(intake, [
        { seq: 0, customer: long },
        { seq: 1, customer: other },
        { seq: 2, customer: long },
      ]);
      await hooks.waitFor((all) => new Set(all.filter((r) => r.status === 200).map((r) => payloadOf(r).seq)).size === 3);
      const deliveries = (await call(intake, 'GET', '/api/routing/deliveries?limit=10')).json().items as Array<{ ordering_key: string }>;
      const keys = deliveries.map((d) => d.ordering_key);
      expect(keys.every((key) => /^h:[\w-]{43}$/.test(key))).toBe(true);
      expect(new Set(keys).size).toBe(2);
    },
    60_000,
  );

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
    const downSince = Date.now();
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
    expect((await call(intake, 'GET', `/api/routing-rules/${created.rule_id}`)).json().circuit).toMatchObject({ state: 'open' });
    const metrics = (await intake.app.inject({ method: 'GET', url: '/metrics', headers: auth })).body;
    expect(metrics).toMatch(/intake_circuits_open 1/);
    expect(metrics).toContain(`intake_circuit_state{rule_id="${created.rule_id}"} 2`);

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
    const scraped = (await intake.app.inject({ method: 'GET', url: '/metrics', headers: auth })).body;
    expect(scraped).toMatch(
      new RegExp(`intake_delivery_attempts_total\\{rule_id="${created.rule_id}",destination_type="webhook",outcome="delivered"\\} 20`),
    );
    expect(scraped).toContain(`intake_delivery_duration_seconds_count{destination_type="webhook"}`);
    expect(scraped).toMatch(new RegExp(`intake_delivery_success_ratio\\{rule_id="${created.rule_id}"\\} 0\\.[0-9]+`));
    expect(scraped).toMatch(/intake_circuits_open 0/);
  }, 60_000);
});

describe('a receiver that refuses Intake’s credentials', () => {
  it('dead-letters the refused deliveries and opens the circuit, so the backlog waits for the credential to be fixed', async () => {
    const intake = await start({ ROUTING_BREAKER_THRESHOLD: '3', ROUTING_BREAKER_COOLDOWN: '600' });
    const hooks = await receiver(() => 401);
    const created = await rule(intake, hooks.url);
    await ingest(
      intake,
      Array.from({ length: 12 }, (_, seq) => ({ seq })),
    );
    const open = await until(
      async () => (await call(intake, 'GET', '/api/routing/destinations')).json().items as Array<Record<string, unknown>>,
      (items) => (items[0]?.circuit as { state: string } | undefined)?.state === 'open',
    );
    await sleep(300);
    expect(hooks.requests).toHaveLength(3);
    const dead = (await call(intake, 'GET', `/api/routing/dead-letters?rule_id=${created.rule_id}`)).json().items;
    expect(dead).toHaveLength(3);
    expect((await call(intake, 'GET', '/api/routing/destinations')).json().items[0]).toMatchObject({ pending: 9 });
    expect(open[0]).toMatchObject({ rule_id: created.rule_id });
  }, 30_000);
});

const redisUrl = process.env.TEST_REDIS_URL || undefined;

describe.skipIf(!redisUrl)('a broker that refuses Intake’s credentials', () => {
  it('holds the backlog behind an open circuit as a receiver answering 401 does, instead of dead-lettering it all', async () => {
    const intake = await start({ ROUTING_BREAKER_THRESHOLD: '3', ROUTING_BREAKER_COOLDOWN: '600' });
    const wrong = new URL(redisUrl ?? '');
    [wrong.username, wrong.password] = ['nobody', 'not-the-password'];
    const created = await call(intake, 'POST', '/api/routing-rules', {
      app_id: 'shop',
      rule_name: 'stream',
      destination_type: 'queue',
      destination_config: { broker: 'redis', url: wrong.href, stream: 'intake-test-refused' },
    });
    expect(created.statusCode, created.body).toBe(201);
    await ingest(
      intake,
      Array.from({ length: 12 }, (_, seq) => ({ seq })),
    );
    await until(
      async () => (await call(intake, 'GET', '/api/routing/destinations')).json().items as Array<{ circuit: { state: string } }>,
      (items) => items[0]?.circuit.state === 'open',
    );
    await sleep(300);
    const ruleId = created.json().rule_id as string;
    expect((await call(intake, 'GET', `/api/routing/dead-letters?rule_id=${ruleId}`)).json().items).toHaveLength(3);
    expect((await call(intake, 'GET', '/api/routing/destinations')).json().items[0]).toMatchObject({ pending: 9 });
  }, 30_000);
});

describe('a destination that asks for quiet', () => {
  it('gets no other delivery until its Retry-After has passed, although its circuit has failures to spare', async () => {
    const intake = await start({ ROUTING_BREAKER_THRESHOLD: '10' });
    const hooks = await receiver((_, index) => (index === 0 ? { status: 429, headers: { 'retry-after': '2' } } : 200));
    await rule(intake, hooks.url);
    await ingest(intake, [{ seq: 0 }]);
    await hooks.waitFor((all) => all[0]?.status === 429);
    await ingest(intake, [{ seq: 1 }]);
    await sleep(1000);
    expect(hooks.requests).toHaveLength(1);
    await hooks.waitFor((all) => all.filter((r) => r.status === 200).length === 2, 10_000);
    expect(deliveredSeqs(hooks)).toEqual([0, 1]);
  }, 30_000);
});

describe('a disabled rule', () => {
  it('keeps its deliveries waiting, unattempted, and sends them when it is switched on again', async () => {
    const intake = await start({ WEBHOOK_RETRY_SCHEDULE: '0.3,0.3' });
    let up = false;
    const hooks = await receiver(() => (up ? 200 : 503));
    const created = await rule(intake, hooks.url);
    await ingest(intake, [{ seq: 0 }, { seq: 1 }]);
    await hooks.waitFor((all) => all.length >= 2);
    expect((await call(intake, 'PATCH', `/api/routing-rules/${created.rule_id}/toggle`)).json().is_active).toBe(false);
    const sentWhileOn = hooks.requests.length;
    // Longer than the whole retry schedule: a disabled rule's deliveries used to be dead-lettered here.
    await sleep(1500);
    expect(hooks.requests.length - sentWhileOn).toBeLessThanOrEqual(2);
    expect((await call(intake, 'GET', `/api/routing/dead-letters?rule_id=${created.rule_id}`)).json().items).toEqual([]);
    const waiting = hooks.requests.length;
    await sleep(600);
    expect(hooks.requests.length).toBe(waiting);

    up = true;
    await call(intake, 'PATCH', `/api/routing-rules/${created.rule_id}/toggle`);
    await hooks.waitFor((all) => all.filter((r) => r.status === 200).length === 2);
    expect(deliveredSeqs(hooks)).toEqual([0, 1]);
    expect((await call(intake, 'GET', `/api/routing/dead-letters?rule_id=${created.rule_id}`)).json().items).toEqual([]);
  }, 30_000);
});

describe('a storage fault while an attempt is in flight', () => {
  it('records the attempt once a short fault is over, sending nothing again and waiting out no lease', async () => {
    const intake = await start();
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const hooks = await receiver(async (_, index) => {
      if (index === 0) await held;
      return 200;
    });
    await rule(intake, hooks.url);
    await ingest(intake, [{ seq: 0 }]);
    await hooks.waitFor((all) => all.length === 1);
    // The attempt's outcome cannot be recorded while its table is away.
    const rename = (from: string, to: string) =>
      intake.store.transaction(async (tx) => {
        await sql`ALTER TABLE ${sql.table(from)} RENAME TO ${sql.table(to)}`.execute(tx.db);
      });
    await rename('routing_attempts', 'routing_attempts_away');
    release();
    await sleep(1500);
    await rename('routing_attempts_away', 'routing_attempts');

    // The destination's answer is known: its recording is tried again, not the sending.
    const statusOf = async () =>
      (await sql<{ status: string }>`SELECT status FROM routing_deliveries`.execute(intake.db)).rows.map((row) => row.status);
    await until(statusOf, (statuses) => statuses.join() === 'succeeded', 10_000);
    expect(hooks.requests).toHaveLength(1);
  }, 30_000);
});

describe('a breaker threshold lowered across a restart', () => {
  it('lets a probe through to a circuit whose failures already passed it, rather than holding for ever', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-breaker-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const env = { ...BASE_ENV, WEBHOOK_RETRY_SCHEDULE: '0.05,0.05,0.05,0.05,0.05,0.05,0.05,0.05' };
    const first = await startTestIntake({ ...env, ROUTING_BREAKER_THRESHOLD: '100' }, {}, dir);
    expect((await call(first, 'POST', '/api/applications', { name: 'Shop', app_id: 'shop' })).statusCode).toBe(201);
    let up = false;
    const hooks = await receiver(() => (up ? 200 : 500));
    const created = await rule(first, hooks.url);
    await ingest(first, [{ seq: 0 }]);
    await hooks.waitFor((all) => all.length >= 3);
    await first.dispose();
    const failures = hooks.requests.length;

    up = true;
    const second = await startTestIntake({ ...env, ROUTING_BREAKER_THRESHOLD: '2' }, {}, dir);
    cleanups.push(() => second.dispose());
    await hooks.waitFor((all) => all.some((r) => r.status === 200));
    expect(hooks.requests.length).toBe(failures + 1);
    const circuit = async () => (await call(second, 'GET', `/api/routing-rules/${created.rule_id}`)).json().circuit;
    expect(await until(circuit, (c: { state: string }) => c.state === 'closed')).toMatchObject({ failures: 0 });
  }, 30_000);
});

describe('a rule whose destination changes', () => {
  it('starts the new destination with a closed circuit, while other changes keep the circuit as it is', async () => {
    // One failure opens the circuit for the default 30 s.
    const intake = await start({ WEBHOOK_RETRY_SCHEDULE: '0.05,60', ROUTING_BREAKER_THRESHOLD: '1' });
    const broken = await receiver(() => 500);
    const fixed = await receiver();
    const created = await rule(intake, broken.url);
    const circuit = async () =>
      (await call(intake, 'GET', `/api/routing-rules/${created.rule_id}`)).json().circuit as { state: string; failures: number };
    const replace = async (fields: Record<string, unknown>) => {
      const response = await call(intake, 'PUT', `/api/routing-rules/${created.rule_id}`, {
        app_id: 'shop',
        rule_name: 'hooks',
        destination_type: 'webhook',
        destination_config: { url: broken.url },
        ...fields,
      });
      expect(response.statusCode, response.body).toBe(200);
    };
    await ingest(intake, [{ seq: 1 }]);
    await until(circuit, (c) => c.state === 'open');

    await replace({ rule_name: 'renamed' });
    expect(await circuit()).toMatchObject({ state: 'open', failures: 1 });

    await replace({ destination_config: { url: fixed.url } });
    expect(await circuit()).toMatchObject({ state: 'closed', failures: 0 });
    await ingest(intake, [{ seq: 2 }]);
    // The delivery held by the old circuit and the new one both go at once, not after the cool-down.
    await fixed.waitFor((all) => all.filter((r) => r.status === 200).length === 2, 5000);
    expect(broken.requests).toHaveLength(1);
  }, 20_000);
});

describe('an attempt to a rule’s former destination', () => {
  it('finishing after the change leaves the new destination’s circuit and counts alone', async () => {
    // One failure would open the circuit for the default 30 s.
    const intake = await start({ WEBHOOK_RETRY_SCHEDULE: '0.05,60', ROUTING_BREAKER_THRESHOLD: '1' });
    let answerOld: (status: number) => void = () => undefined;
    const old = await receiver(() => new Promise<number>((resolve) => (answerOld = resolve)));
    const fresh = await receiver();
    const created = await rule(intake, old.url);
    const destination = async () =>
      ((await call(intake, 'GET', '/api/routing/destinations')).json().items as Array<Record<string, unknown>>)[0];
    await ingest(intake, [{ seq: 1 }]);
    await old.waitFor((all) => all.length === 1);

    const moved = await call(intake, 'PUT', `/api/routing-rules/${created.rule_id}`, {
      app_id: 'shop',
      rule_name: 'hooks',
      destination_type: 'webhook',
      destination_config: { url: fresh.url },
    });
    expect(moved.statusCode, moved.body).toBe(200);
    // The old receiver fails the attempt it held through the change.
    answerOld(500);
    const [failed] = await until(
      async () =>
        (await call(intake, 'GET', `/api/routing/deliveries?rule_id=${created.rule_id}`)).json().items as Array<{
          delivery_id: string;
          attempts: number;
        }>,
      (items) => (items[0]?.attempts ?? 0) >= 1,
    );
    // Its retry is due at once (the wait was the old destination's), and may have gone already.
    const detail = (await call(intake, 'GET', `/api/routing/deliveries/${String(failed?.delivery_id)}`)).json();
    expect(detail.attempt_log[0]).toMatchObject({ attempt: 1, status_code: 500 });
    expect((await call(intake, 'GET', `/api/routing-rules/${created.rule_id}`)).json().circuit).toMatchObject({
      state: 'closed',
      failures: 0,
    });

    // The retry and a new event go to the new destination at once, not after a cool-down.
    await ingest(intake, [{ seq: 2 }]);
    await fresh.waitFor((all) => all.filter((r) => r.status === 200).length === 2, 5000);
    // Its counts are its own: the old destination's failure is not among them.
    expect(await until(destination, (d) => d?.attempts === 2)).toMatchObject({
      attempts: 2,
      delivered: 2,
      failed: 0,
      success_rate: 1,
      circuit: { state: 'closed', failures: 0 },
    });
  }, 20_000);
});

describe('a fair share of the delivery worker per destination', () => {
  /**
   * Sixteen attempts at once, so each destination may have four in flight: `count` receivers that
   * hang get `events` events each, then one event goes to a healthy receiver, which answers it.
   */
  async function healthyBesideHanging(count: number, events: number) {
    const intake = await start({ ROUTING_CONCURRENCY: '16', ROUTING_BREAKER_THRESHOLD: '10' });
    const hanging = await Promise.all(Array.from({ length: count }, () => receiver(() => 'hang')));
    const healthy = await receiver();
    for (const [i, hooks] of hanging.entries()) await rule(intake, hooks.url, { event_type_filter: `slow_${i}` });
    await rule(intake, healthy.url, { event_type_filter: 'fast' });
    for (const i of hanging.keys())
      await ingest(
        intake,
        Array.from({ length: events }, (_, seq) => ({ seq })),
        `slow_${i}`,
      );
    // The hanging receivers hold every attempt the worker lets go to them (until the 15 s timeout).
    for (const hooks of hanging) await hooks.waitFor((all) => all.length > 0);
    await sleep(300);
    const sentAt = Date.now();
    await ingest(intake, [{ seq: 'fast' }], 'fast');
    await healthy.waitFor((all) => all.length === 1, 5000);
    expect(Date.now() - sentAt).toBeLessThan(3000);
    expect(healthy.requests[0]?.status).toBe(200);
    return hanging.map((hooks) => hooks.requests.length);
  }

  it('delivers to a healthy destination at once while two others hang with ten events each', async () => {
    for (const held of await healthyBesideHanging(2, 10)) expect(held).toBeLessThanOrEqual(4);
  }, 20_000);

  it('keeps a quarter of the slots for destinations with nothing in flight, however many others hang', async () => {
    // Five hanging destinations took all sixteen slots before.
    const held = await healthyBesideHanging(5, 6);
    // Further attempts stop once twelve are in flight; a destination's first may still take a free slot.
    expect(held.reduce((sum, n) => sum + n, 0)).toBeLessThanOrEqual(12 + held.length - 1);
  }, 20_000);
});

describe('a fair share of the delivery worker for slow destinations', () => {
  it('gives destinations whose attempts take seconds at most half the slots, so another is served while they keep failing slowly', async () => {
    // Eight slots: eight destinations that answer 500 after 5.2 s take them all with their first attempts,
    // an event each.
    const intake = await start({ ROUTING_CONCURRENCY: '8', ROUTING_BREAKER_THRESHOLD: '100' });
    const slow = await Promise.all(
      Array.from({ length: 8 }, () =>
        receiver(async () => {
          await sleep(5_200);
          return 500;
        }),
      ),
    );
    const healthy = await receiver();
    for (const [i, hooks] of slow.entries()) await rule(intake, hooks.url, { event_type_filter: `slow_${i}` });
    await rule(intake, healthy.url, { event_type_filter: 'fast' });
    for (const i of slow.keys()) await ingest(intake, [{ seq: 1 }], `slow_${i}`);
    for (const hooks of slow) await hooks.waitFor((all) => all.some((request) => request.status === 500), 10_000);
    // Their retries are due at once: before, they took every slot again for another 5.2 s.
    const answered = () => slow.reduce((sum, hooks) => sum + hooks.requests.filter((request) => request.status === 500).length, 0);
    let answeredWhenServed = -1;
    healthy.setScript(() => {
      answeredWhenServed = answered();
      return 200;
    });
    await ingest(intake, [{ seq: 'fast' }], 'fast');
    await healthy.waitFor((all) => all.length === 1, 10_000);
    // Served while the retries were in flight, not once some of them had ended.
    expect(answeredWhenServed).toBe(8);
    const inFlight = slow.reduce((sum, hooks) => sum + hooks.requests.filter((request) => request.status === undefined).length, 0);
    expect(inFlight).toBeLessThanOrEqual(4);
  }, 30_000);
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

describe('replay of one rule over a window', () => {
  async function deliveredWindow(intake: TestIntake, hooks: ScriptedReceiver, other: ScriptedReceiver) {
    const replayed = await rule(intake, hooks.url, { rule_name: 'replayed' });
    await rule(intake, other.url, { rule_name: 'other' });
    await ingest(intake, [{ seq: -1 }]);
    await hooks.waitFor((all) => all.length === 1);
    await sleep(30);
    const from = new Date().toISOString();
    const inside = await ingest(
      intake,
      Array.from({ length: 100 }, (_, seq) => ({ seq })),
    );
    await hooks.waitFor((all) => all.length === 101);
    const to = new Date().toISOString();
    await sleep(30);
    await ingest(intake, [{ seq: 1000 }]);
    await hooks.waitFor((all) => all.length === 102);
    await other.waitFor((all) => all.length === 102);
    return { ruleId: replayed.rule_id, from, to, inside };
  }

  it('sends every event of the window again with its original webhook-id, and nothing else', async () => {
    const intake = await start({ ROUTING_REPLAY_RATE: '1000' });
    const hooks = await receiver();
    const other = await receiver();
    const { ruleId, from, to } = await deliveredWindow(intake, hooks, other);
    const originalIds = new Map(hooks.requests.map((r) => [Number(payloadOf(r).seq), r.webhookId]));

    const started = await call(intake, 'POST', `/api/routing-rules/${ruleId}/replay`, { from, to });
    expect(started.statusCode, started.body).toBe(202);
    expect(started.json()).toMatchObject({ status: 'running', total: 100, rule_id: ruleId });
    const jobId = started.json().job_id as string;
    const done = await until(
      async () => (await call(intake, 'GET', `/api/routing-rules/${ruleId}/replays/${jobId}`)).json(),
      (job: { status: string }) => job.status === 'completed',
    );
    expect(done).toMatchObject({ scanned: 100, scheduled: 100, deliveries: { succeeded: 100, pending: 0 } });

    const again = hooks.requests.slice(102);
    expect(again).toHaveLength(100);
    expect(again.map((r) => Number(payloadOf(r).seq))).toEqual(Array.from({ length: 100 }, (_, i) => i));
    for (const request of again) expect(request.webhookId).toBe(originalIds.get(Number(payloadOf(request).seq)));
    await sleep(200);
    expect(hooks.requests).toHaveLength(202);
    expect(other.requests).toHaveLength(102);

    const fresh = await call(intake, 'POST', `/api/routing-rules/${ruleId}/replay`, { from, to, fresh_ids: true });
    expect(fresh.statusCode).toBe(202);
    await hooks.waitFor((all) => all.length === 302);
    const freshIds = hooks.requests.slice(202).map((r) => r.webhookId);
    expect(freshIds.filter((id) => [...originalIds.values()].includes(id))).toEqual([]);
    expect(new Set(freshIds).size).toBe(100);
  }, 60_000);

  it("shows the replay's delivery in the item's outcome with its destination type, as the deliveries API does", async () => {
    const intake = await start({ ROUTING_REPLAY_RATE: '1000' });
    const hooks = await receiver();
    const created = await rule(intake, hooks.url);
    const from = new Date(Date.now() - 1000).toISOString();
    const [itemId] = await ingest(intake, [{ seq: 0 }]);
    await hooks.waitFor((all) => all.length === 1);
    const started = await call(intake, 'POST', `/api/routing-rules/${created.rule_id}/replay`, { from, to: new Date().toISOString() });
    expect(started.statusCode, started.body).toBe(202);
    await hooks.waitFor((all) => all.length === 2);
    type Outcome = { delivery_id: string; destination_type: string | null; status: string };
    const deliveries = await until(
      async () => (await call(intake, 'GET', `/query/${itemId}`)).json().routing.deliveries as Outcome[],
      (all) => all.length === 2 && all.every((d) => d.status === 'succeeded'),
    );
    const replayed = deliveries.find((d) => d.delivery_id.startsWith('rpl_'));
    expect(replayed?.destination_type).toBe('webhook');
    const shown = await call(intake, 'GET', `/api/routing/deliveries/${replayed?.delivery_id ?? ''}`);
    expect(shown.json().destination_type).toBe('webhook');
  }, 60_000);

  it('never holds live deliveries of an ordering key behind a replayed one that keeps failing', async () => {
    const intake = await start({ ROUTING_REPLAY_RATE: '1000', WEBHOOK_RETRY_SCHEDULE: '30,30' });
    // The replayed copy of seq 0 fails (its retry is 30 s away); everything else succeeds.
    const hooks = await receiver((_request, index) => (index === 1 ? 500 : 200));
    const ordered = await rule(intake, hooks.url, { ordering_key: 'payload.k' });
    const from = new Date(Date.now() - 1000).toISOString();
    await ingest(intake, [{ k: 'A', seq: 0 }]);
    await hooks.waitFor((all) => all.length === 1);
    const to = new Date(Date.now() + 1).toISOString();
    await sleep(10);
    const started = await call(intake, 'POST', `/api/routing-rules/${ordered.rule_id}/replay`, { from, to });
    expect(started.statusCode, started.body).toBe(202);
    await hooks.waitFor((all) => all.length === 2);
    // A live event of the same key goes at once, not after the replay's retry.
    await ingest(intake, [{ k: 'A', seq: 1 }]);
    const all = await hooks.waitFor((requests) => requests.some((request) => payloadOf(request).seq === 1), 10_000);
    expect(all.map((request) => payloadOf(request).seq)).toEqual([0, 0, 1]);
  }, 60_000);

  it('re-evaluates the rule’s current condition over the window when asked', async () => {
    const intake = await start();
    const hooks = await receiver();
    const created = await rule(intake, hooks.url, { condition: { 'payload.total': { $gt: 50 } } });
    const from = new Date().toISOString();
    await ingest(intake, [{ total: 10 }, { total: 100 }, { total: 20 }]);
    await hooks.waitFor((all) => all.length === 1);
    const to = new Date().toISOString();
    // As a release before time-ordered ids stored it: the replay must send that id, not compute one anew.
    const olderId = `msg_${'0'.repeat(32)}`;
    await intake.store.transaction((tx) =>
      sql`UPDATE routing_deliveries SET delivery_id = ${olderId} WHERE rule_id = ${created.rule_id}`.execute(tx.db),
    );
    const updated = await call(intake, 'PUT', `/api/routing-rules/${created.rule_id}`, {
      app_id: 'shop',
      rule_name: 'hooks',
      destination_type: 'webhook',
      destination_config: { url: hooks.url },
      condition: { 'payload.total': { $ne: 20 } },
    });
    expect(updated.statusCode).toBe(200);
    const started = await call(intake, 'POST', `/api/routing-rules/${created.rule_id}/replay`, { from, to, reevaluate: true });
    expect(started.statusCode).toBe(202);
    await until(
      async () => (await call(intake, 'GET', `/api/routing-rules/${created.rule_id}/replays/${started.json().job_id}`)).json(),
      (job: { status: string }) => job.status === 'completed',
    );
    // A completed job has scheduled its deliveries: they reach the receiver a moment later.
    const replayed = (await hooks.waitFor((all) => all.length >= 3)).slice(1);
    expect(replayed.map((r) => payloadOf(r).total).sort()).toEqual([10, 100]);
    // The event routed before keeps the id it was stored under; the one the old condition left out gets its own.
    expect(replayed.find((r) => payloadOf(r).total === 100)?.webhookId).toBe(olderId);
    expect(replayed.find((r) => payloadOf(r).total === 10)?.webhookId).toMatch(/^msg_[0-9a-f]{32}$/);
  });

  it('refuses bad windows, disabled and deleted rules with 400, and a second replay with 409', async () => {
    const intake = await start({ ROUTING_REPLAY_RATE: '2' });
    const hooks = await receiver();
    const created = await rule(intake, hooks.url);
    const from = new Date(Date.now() - 60_000).toISOString();
    await ingest(
      intake,
      Array.from({ length: 10 }, (_, seq) => ({ seq })),
    );
    await hooks.waitFor((all) => all.length === 10);
    const to = new Date().toISOString();
    const replay = (body: object, ruleId = created.rule_id) => call(intake, 'POST', `/api/routing-rules/${ruleId}/replay`, body);
    const jobs = async () => (await call(intake, 'GET', `/api/routing-rules/${created.rule_id}/replays`)).json().items;

    for (const bad of [{ from: to, to: from }, { from, to: new Date(Date.now() + 3_600_000).toISOString() }, { from }]) {
      const response = await replay(bad);
      expect(response.statusCode).toBe(400);
      expect(response.headers['content-type']).toMatch(/application\/problem\+json/);
    }
    expect(await jobs()).toEqual([]);

    const first = await replay({ from, to });
    expect(first.statusCode).toBe(202);
    const second = await replay({ from, to });
    expect(second.statusCode).toBe(409);
    expect(second.json().code).toBe('routing.replay-running');
    const cancelled = await call(intake, 'POST', `/api/routing-rules/${created.rule_id}/replays/${first.json().job_id}/cancel`);
    expect(cancelled.json()).toMatchObject({ status: 'cancelled' });
    const sentBefore = hooks.requests.length;
    await sleep(1200);
    expect(hooks.requests.length - sentBefore).toBeLessThanOrEqual(1);
    expect((await jobs()).map((j: { status: string }) => j.status)).toEqual(['cancelled']);

    await call(intake, 'PATCH', `/api/routing-rules/${created.rule_id}/toggle`);
    const disabled = await replay({ from, to });
    expect(disabled.statusCode).toBe(400);
    expect(disabled.json().code).toBe('routing.rule-disabled');
    await call(intake, 'DELETE', `/api/routing-rules/${created.rule_id}`);
    const deleted = await replay({ from, to });
    expect(deleted.statusCode).toBe(400);
    expect(deleted.json().code).toBe('routing.rule-deleted');
    expect((await replay({ from, to }, 'never-existed')).statusCode).toBe(404);
    expect(await jobs()).toHaveLength(1);
  });
});

describe('a rule deleted behind an open circuit', () => {
  it('dead-letters its whole backlog at once, not one probe at a time', async () => {
    const intake = await start({ ROUTING_BREAKER_THRESHOLD: '2', ROUTING_BREAKER_COOLDOWN: '600' });
    const hooks = await receiver(() => 500);
    const created = await rule(intake, hooks.url);
    await ingest(
      intake,
      Array.from({ length: 30 }, (_, seq) => ({ seq })),
    );
    const circuit = async () => (await call(intake, 'GET', `/api/routing-rules/${created.rule_id}`)).json().circuit;
    await until(circuit, (c: { state: string }) => c.state === 'open');
    expect((await call(intake, 'DELETE', `/api/routing-rules/${created.rule_id}`)).statusCode).toBe(204);
    const deadLetters = async () =>
      (await sql<{ n: number }>`SELECT count(*) AS n FROM routing_deliveries WHERE status = 'dead_lettered'`.execute(intake.db)).rows[0]?.n;
    // The circuit's next probe is ten minutes away: the backlog waited for it, then went one probe at a time.
    expect(await until(deadLetters, (n) => Number(n) === 30, 10_000)).toBe(30);
  }, 30_000);
});

describe('signing secrets at rest', () => {
  it('stores them sealed, and seals a secret left in clear at the next start without breaking its signatures', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-secrets-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const first = await startTestIntake(BASE_ENV, {}, dir);
    expect((await call(first, 'POST', '/api/applications', { name: 'Shop', app_id: 'shop' })).statusCode).toBe(201);
    const hooks = await receiver();
    const created = await rule(first, hooks.url);
    const stored = async (intake: TestIntake) =>
      intake.store.transaction(
        async (tx) =>
          (await sql<{ secret: string }>`SELECT secret FROM routing_secrets WHERE rule_id = ${created.rule_id}`.execute(tx.db)).rows[0]
            ?.secret,
      );
    expect(await stored(first)).toMatch(/^enc:v1:/);
    expect(await stored(first)).not.toContain(created.signing_secret.slice(6));
    // As a release before sealing would have left it.
    await first.store.transaction(async (tx) => {
      await sql`UPDATE routing_secrets SET secret = ${created.signing_secret} WHERE rule_id = ${created.rule_id}`.execute(tx.db);
    });
    await first.dispose();

    const second = await startTestIntake(BASE_ENV, {}, dir);
    cleanups.push(() => second.dispose());
    await until(
      () => stored(second),
      (secret) => secret?.startsWith('enc:v1:') === true,
    );
    await ingest(second, [{ n: 1 }]);
    const [request] = await hooks.waitFor((all) => all.length === 1);
    expect(() =>
      new Webhook(created.signing_secret).verify(request?.body ?? '', {
        'webhook-id': String(request?.headers['webhook-id']),
        'webhook-timestamp': String(request?.headers['webhook-timestamp']),
        'webhook-signature': String(request?.headers['webhook-signature']),
      }),
    ).not.toThrow();
  });
});

describe('a receiver that answers 200 and then trickles its body', () => {
  it('has the event once: the status decides, the body is not waited for', async () => {
    const intake = await start();
    const seen: string[] = [];
    const server = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        seen.push(String(request.headers['webhook-id']));
        response.writeHead(200, { 'content-type': 'text/plain' });
        response.write('accepted, and more to come');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    );
    const created = await rule(intake, `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`);
    await ingest(intake, [{ n: 1 }]);
    const [delivery] = await until(
      async () =>
        (await call(intake, 'GET', `/api/routing/deliveries?rule_id=${created.rule_id}`)).json().items as Array<{ status: string }>,
      (items) => items[0]?.status === 'succeeded',
    );
    expect(delivery).toMatchObject({ status: 'succeeded', attempts: 1 });
    await sleep(500);
    expect(seen).toHaveLength(1);
  });
});

describe('destinations view', () => {
  it('keeps each rule’s attempt counts across a restart, and starts them over when its destination changes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-tallies-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const env = { ...BASE_ENV, WEBHOOK_RETRY_SCHEDULE: '0.02' };
    const hooks = await receiver((_request, index) => (index === 0 ? 503 : 200));
    const first = await startTestIntake(env, {}, dir);
    expect((await call(first, 'POST', '/api/applications', { name: 'Shop', app_id: 'shop' })).statusCode).toBe(201);
    const created = await rule(first, hooks.url);
    await ingest(first, [{ n: 1 }, { n: 2 }]);
    const counts = { rule_id: created.rule_id, attempts: 3, delivered: 2, failed: 1 };
    const view = async (intake: TestIntake) =>
      ((await call(intake, 'GET', '/api/routing/destinations')).json().items as Array<Record<string, unknown>>)[0];
    const before = await until(
      () => view(first),
      (d) => d?.attempts === 3,
    );
    expect(before).toMatchObject({ ...counts, success_rate: 2 / 3, mean_latency_ms: expect.any(Number) });
    await first.dispose();

    const second = await startTestIntake(env, {}, dir);
    cleanups.push(() => second.dispose());
    expect(await view(second)).toMatchObject({ ...counts, success_rate: 2 / 3, mean_latency_ms: before?.mean_latency_ms });
    const scraped = (await second.app.inject({ method: 'GET', url: '/metrics', headers: auth })).body;
    expect(scraped).toMatch(new RegExp(`intake_delivery_success_ratio\\{rule_id="${created.rule_id}"\\} 0\\.6666`));

    // Another name keeps them; another destination starts from nothing.
    const replace = (fields: Record<string, unknown>) =>
      call(second, 'PUT', `/api/routing-rules/${created.rule_id}`, {
        app_id: 'shop',
        rule_name: 'hooks',
        destination_type: 'webhook',
        destination_config: { url: hooks.url },
        ...fields,
      });
    expect((await replace({ rule_name: 'renamed' })).statusCode).toBe(200);
    expect(await view(second)).toMatchObject(counts);
    expect((await replace({ destination_config: { url: `${hooks.url}?v=2` } })).statusCode).toBe(200);
    expect(await view(second)).toMatchObject({ attempts: 0, delivered: 0, failed: 0, success_rate: null, mean_latency_ms: null });
    await ingest(second, [{ n: 3 }]);
    expect(
      await until(
        () => view(second),
        (d) => d?.attempts === 1,
      ),
    ).toMatchObject({ attempts: 1, delivered: 1, failed: 0, success_rate: 1 });
  });

  it('counts deliveries to database destinations, which are made while scheduling, as delivered attempts', async () => {
    const intake = await start();
    const created = await call(intake, 'POST', '/api/routing-rules', {
      app_id: 'shop',
      rule_name: 'orders table',
      destination_type: 'database',
      destination_config: { table: 't_orders' },
    });
    expect(created.statusCode, created.body).toBe(201);
    const ruleId = (created.json() as { rule_id: string }).rule_id;
    await ingest(intake, [{ n: 1 }, { n: 2 }, { n: 3 }]);

    const [destination] = await until(
      async () => (await call(intake, 'GET', '/api/routing/destinations')).json().items as Array<Record<string, unknown>>,
      (items) => items[0]?.attempts === 3,
    );
    expect(destination).toMatchObject({ rule_id: ruleId, attempts: 3, delivered: 3, failed: 0, success_rate: 1, pending: 0 });
  });
});
