import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MAX_RULES_PER_APPLICATION } from '../../src/routing/application/manage-rules.js';
import { DEAD_LETTER_SLICE } from '../../src/routing/application/deleted-rule-backlogs.js';
import { fixedClock } from '../../src/shared/clock.js';
import { auth, startTestIntake, type TestIntake } from '../support/embedded-intake.js';
import { backends, startIntakeOn } from '../support/paging.js';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const FAST_RETRIES = { WEBHOOK_ALLOWED_HOSTS: '127.0.0.1', WEBHOOK_RETRY_SCHEDULE: '0.05,0.05,0.05' };
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function start(env: Record<string, string> = FAST_RETRIES, dir?: string): Promise<TestIntake> {
  const intake = await startTestIntake(env, {}, dir);
  cleanups.push(() => intake.dispose());
  return intake;
}
async function receiver(port?: number): Promise<WebhookReceiver> {
  const r = await startWebhookReceiver(port);
  cleanups.push(() => r.close());
  return r;
}

const json = (headers: Record<string, string> = auth) => ({ ...headers, 'content-type': 'application/json' });
const call = (
  intake: TestIntake,
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  url: string,
  payload?: unknown,
  headers: Record<string, string> = auth,
) =>
  intake.app.inject({
    method,
    url,
    headers: payload === undefined ? headers : json(headers),
    ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }),
  });

async function setUp(intake: TestIntake, appId = 'shop') {
  expect((await call(intake, 'POST', '/api/applications', { name: 'Shop', app_id: appId })).statusCode).toBe(201);
  const key = await call(intake, 'POST', `/api/applications/${appId}/keys`, { name: 'server' });
  expect(key.statusCode).toBe(201);
  return { writeKey: { authorization: `Bearer ${key.json().key}` }, keyId: key.json().key_id as string };
}

async function webhookRule(intake: TestIntake, url: string, condition: object = { 'payload.total': { $gt: 50 } }, appId = 'shop') {
  const created = await call(intake, 'POST', '/api/routing-rules', {
    app_id: appId,
    rule_name: 'big orders',
    event_type_filter: 'order_created',
    condition,
    destination_type: 'webhook',
    destination_config: { url },
    priority: 10,
  });
  expect(created.statusCode).toBe(201);
  return created.json() as { rule_id: string; signing_secret: string };
}

const deliveriesOf = async (intake: TestIntake, query: string) =>
  (await call(intake, 'GET', `/api/routing/deliveries?${query}`)).json().items as Array<Record<string, unknown>>;

async function until<T>(probe: () => Promise<T>, accept: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (accept(value)) return value;
    if (Date.now() > deadline) throw new Error(`condition not reached: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A rule to a receiver that is down, and its one delivery once it is dead-lettered. */
async function deadLetteredRule(intake: TestIntake) {
  const hooks = await receiver();
  await hooks.close();
  await setUp(intake);
  const rule = await webhookRule(intake, hooks.url, {});
  await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { total: 1 } });
  const [dead] = await until(
    () =>
      call(intake, 'GET', `/api/routing/dead-letters?rule_id=${rule.rule_id}`).then(
        (r) => r.json().items as Array<{ delivery_id: string; attempts: number }>,
      ),
    (items) => items.length === 1,
  );
  return { hooks, rule, dead };
}

describe('the seed flow: application, key, rule, ingest, signed webhook', () => {
  it('delivers exactly the matching order, signed so a Standard Webhooks verifier accepts it', async () => {
    const intake = await start();
    const hooks = await receiver();
    const { writeKey, keyId } = await setUp(intake);
    const rule = await webhookRule(intake, hooks.url);
    expect(rule.signing_secret).toMatch(/^whsec_/);

    const big = await call(
      intake,
      'POST',
      '/api/ingest/shop',
      { event_type: 'order_created', payload: { order_id: 'A-1', total: 99.99 } },
      writeKey,
    );
    const small = await call(
      intake,
      'POST',
      '/api/ingest/shop',
      { event_type: 'order_created', payload: { order_id: 'A-2', total: 10 } },
      writeKey,
    );
    expect(big.statusCode).toBe(201);
    expect(big.json()).toEqual({
      success: true,
      message: 'Data ingested successfully',
      data: { event_id: expect.any(String), routing_summary: { rules_evaluated: 1, rules_matched: 1, rules_executed: 1 } },
    });
    expect(small.json().data.routing_summary).toEqual({ rules_evaluated: 1, rules_matched: 0, rules_executed: 0 });

    const [request] = await hooks.waitFor(1);
    await new Promise((r) => setTimeout(r, 200));
    expect(hooks.received).toHaveLength(1);
    const verified = new Webhook(rule.signing_secret).verify(request?.body ?? '', {
      'webhook-id': String(request?.headers['webhook-id']),
      'webhook-timestamp': String(request?.headers['webhook-timestamp']),
      'webhook-signature': String(request?.headers['webhook-signature']),
    }) as { data: { event_id: string; payload: object; metadata: { key_id: string } } };
    expect(verified.data.event_id).toBe(big.json().data.event_id);
    expect(verified.data.payload).toEqual({ order_id: 'A-1', total: 99.99 });
    expect(verified.data.metadata.key_id).toBe(keyId);

    await intake.subscriptions.caughtUp();
    const event = (await call(intake, 'GET', `/api/events/${big.json().data.event_id}`)).json();
    expect(event).toMatchObject({ app_id: 'shop', event_type: 'order_created', metadata: { key_id: keyId, channel: 'application_api' } });
    expect(event.routing.deliveries).toEqual([
      expect.objectContaining({ rule_id: rule.rule_id, status: 'succeeded', attempts: 1, destination_type: 'webhook' }),
    ]);
  });
});

describe('webhook delivery', () => {
  it('retries a flaky receiver with the same webhook-id and delivers once', async () => {
    const intake = await start();
    const hooks = await receiver();
    hooks.respondWith(503, 500);
    await setUp(intake);
    const rule = await webhookRule(intake, hooks.url, {});
    const ingested = await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { total: 1 } });
    const requests = await hooks.waitFor(3);
    expect(new Set(requests.map((r) => r.headers['webhook-id'])).size).toBe(1);
    const [delivery] = await until(
      () => deliveriesOf(intake, `rule_id=${rule.rule_id}`),
      (items) => items[0]?.status === 'succeeded',
    );
    expect(delivery).toMatchObject({ event_id: ingested.json().data.event_id, attempts: 3, status: 'succeeded' });
    const detail = (await call(intake, 'GET', `/api/routing/deliveries/${String(delivery?.delivery_id)}`)).json();
    expect(detail.attempt_log.map((a: { status_code: number }) => a.status_code)).toEqual([503, 500, 200]);
    await new Promise((r) => setTimeout(r, 200));
    expect(hooks.received).toHaveLength(3);
  });

  it('dead-letters a dead receiver and replays it once the receiver is back', async () => {
    const intake = await start();
    const { hooks, rule, dead } = await deadLetteredRule(intake);
    expect(dead).toMatchObject({ status: 'dead_lettered', attempts: 4 });

    const back = await receiver(Number(new URL(hooks.url).port));
    const replay = await call(intake, 'POST', '/api/routing/dead-letters/replay', { rule_id: rule.rule_id });
    expect(replay.json()).toEqual({ replayed: 1, skipped: 0 });
    const [request] = await back.waitFor(1);
    expect(request?.headers['webhook-id']).toBe(dead?.delivery_id);
    await until(
      () => deliveriesOf(intake, `rule_id=${rule.rule_id}`),
      (items) => items[0]?.status === 'succeeded',
    );
    // Delivered now: replaying it again conflicts with its state; an id that never existed is not found.
    const again = await call(intake, 'POST', `/api/routing/deliveries/${dead?.delivery_id}/replay`, {});
    expect([again.statusCode, again.json().code]).toEqual([409, 'routing.not-dead-lettered']);
    const unknown = await call(intake, 'POST', '/api/routing/deliveries/no-such-delivery/replay', {});
    expect([unknown.statusCode, unknown.json().code]).toEqual([404, 'routing.delivery-not-found']);
  });

  it('gives a replayed dead letter the whole retry schedule again, across a restart, and keeps every attempt in its log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-replay-round-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const hooks = await receiver();
    hooks.respondWith(500, 500, 500, 500, 500, 500);
    // Three attempts a round; the second waits about a second, long enough to restart in.
    const env = { WEBHOOK_ALLOWED_HOSTS: '127.0.0.1', WEBHOOK_RETRY_SCHEDULE: '1,0.05' };
    const first = await startTestIntake(env, {}, dir);
    await setUp(first);
    const rule = await webhookRule(first, hooks.url, {});
    await call(first, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { total: 1 } });
    const [dead] = await until(
      () => deliveriesOf(first, `rule_id=${rule.rule_id}&status=dead_lettered`),
      (items) => items.length === 1,
    );
    expect(dead).toMatchObject({ attempts: 3, last_error: 'HTTP 500 (gave up after 3 attempts)' });

    const replayed = await call(first, 'POST', `/api/routing/deliveries/${String(dead?.delivery_id)}/replay`);
    expect(replayed.statusCode).toBe(202);
    // The first attempt of the new round fails, and the process stops while the next one waits.
    await hooks.waitFor(4);
    await first.dispose();

    const second = await start(env, dir);
    await hooks.waitFor(6);
    const [again] = await until(
      () => deliveriesOf(second, `rule_id=${rule.rule_id}&status=dead_lettered`),
      (items) => items.length === 1,
    );
    expect(again).toMatchObject({ attempts: 6, last_error: 'HTTP 500 (gave up after 6 attempts, 3 since it was replayed)' });
    const detail = (await call(second, 'GET', `/api/routing/deliveries/${String(dead?.delivery_id)}`)).json();
    expect(detail.attempt_log.map((a: { attempt: number; status_code: number }) => [a.attempt, a.status_code])).toEqual([
      [1, 500],
      [2, 500],
      [3, 500],
      [4, 500],
      [5, 500],
      [6, 500],
    ]);
    // The query view tells the same: the item's one delivery, dead-lettered after its six attempts.
    await until(
      async () => (await call(second, 'GET', `/query/${String(dead?.event_id)}`)).json().routing.deliveries as unknown[],
      (deliveries) =>
        JSON.stringify(deliveries) ===
        JSON.stringify([
          {
            delivery_id: dead?.delivery_id,
            rule_id: rule.rule_id,
            destination_type: 'webhook',
            status: 'dead_lettered',
            attempts: 6,
            last_error: 'HTTP 500 (gave up after 6 attempts, 3 since it was replayed)',
          },
        ]),
    );
    expect(hooks.received).toHaveLength(6);
  });

  it('says why a delivery was dead-lettered: its last failure and the attempts it was given', async () => {
    const intake = await start();
    const hooks = await receiver();
    hooks.respondWith(500, 500, 500, 500);
    await setUp(intake);
    const rule = await webhookRule(intake, hooks.url, {});
    await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: {} });
    const [dead] = await until(
      () => deliveriesOf(intake, `rule_id=${rule.rule_id}&status=dead_lettered`),
      (items) => items.length === 1,
    );
    expect(dead).toMatchObject({ attempts: 4, last_error: 'HTTP 500 (gave up after 4 attempts)' });
    const detail = (await call(intake, 'GET', `/api/routing/deliveries/${String(dead?.delivery_id)}`)).json();
    expect(detail.last_error).toBe('HTTP 500 (gave up after 4 attempts)');
    // Each attempt keeps its own error.
    expect(detail.attempt_log.map((a: { error: string }) => a.error)).toEqual(['HTTP 500', 'HTTP 500', 'HTTP 500', 'HTTP 500']);
  });

  it('refuses to replay one dead letter of a disabled or deleted rule (400), as it does them all, adding no attempt', async () => {
    const intake = await start();
    const { rule, dead } = await deadLetteredRule(intake);
    const replayOne = async () => {
      const response = await call(intake, 'POST', `/api/routing/deliveries/${String(dead?.delivery_id)}/replay`, {});
      return [response.statusCode, response.json().code];
    };
    expect((await call(intake, 'PATCH', `/api/routing-rules/${rule.rule_id}/toggle`)).statusCode).toBe(200);
    expect(await replayOne()).toEqual([400, 'routing.rule-disabled']);
    expect((await call(intake, 'DELETE', `/api/routing-rules/${rule.rule_id}`)).statusCode).toBe(204);
    // Accepted, it was dead-lettered again at once with an attempt no receiver saw.
    expect(await replayOne()).toEqual([400, 'routing.rule-deleted']);
    const after = (await call(intake, 'GET', `/api/routing/deliveries/${String(dead?.delivery_id)}`)).json();
    expect(after).toMatchObject({ status: 'dead_lettered', attempts: dead?.attempts });
  });

  it('refuses to replay the dead letters of an unknown rule (404), and of a disabled or deleted one (400)', async () => {
    const intake = await start();
    const hooks = await receiver();
    await setUp(intake);
    const rule = await webhookRule(intake, hooks.url, {});
    const replayOf = async (ruleId: string) => {
      const response = await call(intake, 'POST', '/api/routing/dead-letters/replay', { rule_id: ruleId });
      return [response.statusCode, response.headers['content-type'], response.json().code ?? response.json()];
    };
    expect(await replayOf('no-such-rule')).toEqual([404, expect.stringMatching(/application\/problem\+json/), 'routing.rule-not-found']);
    expect(await replayOf(rule.rule_id)).toEqual([202, expect.stringMatching(/json/), { replayed: 0, skipped: 0 }]);
    expect((await call(intake, 'PATCH', `/api/routing-rules/${rule.rule_id}/toggle`)).statusCode).toBe(200);
    expect(await replayOf(rule.rule_id)).toEqual([400, expect.stringMatching(/problem/), 'routing.rule-disabled']);
    expect((await call(intake, 'DELETE', `/api/routing-rules/${rule.rule_id}`)).statusCode).toBe(204);
    expect(await replayOf(rule.rule_id)).toEqual([400, expect.stringMatching(/problem/), 'routing.rule-deleted']);
    // Without a rule, every dead letter of a live, active rule is replayed.
    const all = await call(intake, 'POST', '/api/routing/dead-letters/replay', {});
    expect([all.statusCode, all.json()]).toEqual([202, { replayed: 0, skipped: 0 }]);
  });

  it('replays the dead letters of every active rule, and leaves those of a disabled rule as they are', async () => {
    const intake = await start();
    const hooks = await receiver();
    await hooks.close();
    await setUp(intake);
    const active = await webhookRule(intake, hooks.url, {});
    const disabled = await webhookRule(intake, hooks.url, {});
    await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { total: 1 } });
    await until(
      () => call(intake, 'GET', '/api/routing/dead-letters').then((r) => r.json().items as unknown[]),
      (items) => items.length === 2,
    );
    expect((await call(intake, 'PATCH', `/api/routing-rules/${disabled.rule_id}/toggle`)).statusCode).toBe(200);
    const back = await receiver(Number(new URL(hooks.url).port));
    // With no body at all, as `curl -X POST` sends it.
    const all = await call(intake, 'POST', '/api/routing/dead-letters/replay');
    expect([all.statusCode, all.json()]).toEqual([202, { replayed: 1, skipped: 1 }]);
    await back.waitFor(1);
    await until(
      () => deliveriesOf(intake, `rule_id=${active.rule_id}`),
      (items) => items[0]?.status === 'succeeded',
    );
    expect((await deliveriesOf(intake, `rule_id=${disabled.rule_id}`))[0]).toMatchObject({ status: 'dead_lettered' });
    await back.close();
  });

  it('keeps the deliveries of a rule disabled while its circuit is open waiting, and sends them once it is on again', async () => {
    const env = {
      WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
      WEBHOOK_RETRY_SCHEDULE: '60',
      ROUTING_BREAKER_THRESHOLD: '1',
      ROUTING_BREAKER_COOLDOWN: '1',
    };
    const intake = await start(env);
    const hooks = await receiver();
    hooks.respondWith(500, 500, 500);
    await setUp(intake);
    const rule = await webhookRule(intake, hooks.url, {});
    for (let i = 0; i < 3; i++) await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: {} });
    // The first attempt fails and opens the circuit; the other two wait for its probe.
    await until(
      () => deliveriesOf(intake, 'status=retrying'),
      (items) => items.length === 1,
    );
    expect((await call(intake, 'PATCH', `/api/routing-rules/${rule.rule_id}/toggle`)).json().is_active).toBe(false);

    // Past the cool-down: the probe would have gone by now; nothing goes, nothing is dead-lettered.
    await sleep(2500);
    expect(hooks.received).toHaveLength(1);
    expect(await deliveriesOf(intake, 'status=dead_lettered')).toEqual([]);

    expect((await call(intake, 'PATCH', `/api/routing-rules/${rule.rule_id}/toggle`)).json().is_active).toBe(true);
    await until(
      async () => hooks.received.length,
      (n) => n === 3,
      8000,
    );
    expect(await deliveriesOf(intake, 'status=dead_lettered')).toEqual([]);
  });

  it('refuses to replay a delivery still being retried, naming its state as the API shows it', async () => {
    const intake = await start({ WEBHOOK_ALLOWED_HOSTS: '127.0.0.1', WEBHOOK_RETRY_SCHEDULE: '60' });
    const hooks = await receiver();
    hooks.respondWith(500);
    await setUp(intake);
    await webhookRule(intake, hooks.url, {});
    await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: {} });
    const [retrying] = await until(
      () => deliveriesOf(intake, 'status=retrying'),
      (items) => items.length === 1,
    );
    const replay = await call(intake, 'POST', `/api/routing/deliveries/${String(retrying?.delivery_id)}/replay`, {});
    expect(replay.statusCode).toBe(409);
    expect(replay.json().detail).toMatch(/ is retrying: only a dead-lettered delivery/);
  });

  it('replays every dead letter, past the first thousand', async () => {
    const intake = await start({ WEBHOOK_ALLOWED_HOSTS: '127.0.0.1', ROUTING_BREAKER_THRESHOLD: '1000' });
    const hooks = await receiver();
    await setUp(intake);
    const rule = await webhookRule(intake, hooks.url, {});
    // A 400 is final: each delivery is dead-lettered at its first attempt.
    hooks.respondWith(...Array.from({ length: 1001 }, () => 400));
    for (const size of [500, 500, 1]) {
      const events = Array.from({ length: size }, () => ({ event_type: 'order_created', payload: {} }));
      expect((await call(intake, 'POST', '/api/ingest/shop/batch', { events })).statusCode).toBe(200);
    }
    await hooks.waitFor(1001, 60_000);
    const deadCount = async () => {
      let count = 0;
      let cursor: string | null = null;
      do {
        const page = (await call(intake, 'GET', `/api/routing/dead-letters?limit=1000${cursor ? `&cursor=${cursor}` : ''}`)).json();
        count += (page.items as unknown[]).length;
        cursor = page.next_cursor as string | null;
      } while (cursor !== null);
      return count;
    };
    await until(deadCount, (n) => n === 1001, 30_000);

    const replay = await call(intake, 'POST', '/api/routing/dead-letters/replay', { rule_id: rule.rule_id });
    expect([replay.statusCode, replay.json()]).toEqual([202, { replayed: 1001, skipped: 0 }]);
    await hooks.waitFor(2002, 60_000);
  }, 120_000);

  it('loses no delivery when the process restarts in the middle of its retries', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-restart-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const hooks = await receiver();
    hooks.respondWith(500);
    const env = { WEBHOOK_ALLOWED_HOSTS: '127.0.0.1', WEBHOOK_RETRY_SCHEDULE: '1' };
    const first = await startTestIntake(env, {}, dir);
    await setUp(first);
    await webhookRule(first, hooks.url, {});
    await call(first, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { total: 1 } });
    await hooks.waitFor(1);
    await first.dispose();

    const second = await start(env, dir);
    const requests = await hooks.waitFor(2);
    expect(requests[1]?.headers['webhook-id']).toBe(requests[0]?.headers['webhook-id']);
    await until(
      () => deliveriesOf(second, 'status=succeeded'),
      (items) => items.length === 1,
    );
  });

  it('routes the items that came while routing was off (INTAKE_DISABLE=routing) once it runs again, by the rules then in force', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-routing-off-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const hooks = await receiver();
    const first = await startTestIntake(FAST_RETRIES, {}, dir);
    const { writeKey } = await setUp(first);
    await webhookRule(first, hooks.url);
    await first.dispose();

    const off = await startTestIntake({ ...FAST_RETRIES, INTAKE_DISABLE: 'routing' }, {}, dir);
    const big = await call(off, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { total: 99 } }, writeKey);
    const small = await call(off, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { total: 5 } }, writeKey);
    expect([big.statusCode, small.statusCode]).toEqual([201, 201]);
    // The answer does not say that no rule matched: routing has not decided yet (it said zero of everything).
    const deferred = { rules_evaluated: 0, rules_matched: 0, rules_executed: 0, deferred: true };
    expect([big.json().data.routing_summary, small.json().data.routing_summary]).toEqual([deferred, deferred]);
    // The chain's own position waits for its routing member, which is not running: each running member is read instead.
    await until(
      () => off.subscriptions.status(),
      (status) => status.every((s) => s.lag === 0),
    );
    await off.dispose();

    // Nothing was sent while routing was off; once it runs, the matching item is, and only it.
    expect(hooks.received).toHaveLength(0);
    const on = await start(FAST_RETRIES, dir);
    const [request] = await hooks.waitFor(1);
    expect(JSON.parse(request?.body ?? '{}').data.event_id).toBe(big.json().data.event_id);
    await on.subscriptions.caughtUp();
    await sleep(200);
    expect(hooks.received).toHaveLength(1);
  });

  it('disables the rule when the endpoint answers 410 Gone', async () => {
    const intake = await start();
    const hooks = await receiver();
    hooks.respondWith(410);
    await setUp(intake);
    const rule = await webhookRule(intake, hooks.url, {});
    await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: {} });
    await until(
      () => call(intake, 'GET', `/api/routing-rules/${rule.rule_id}`).then((r) => r.json()),
      (r: { is_active: boolean }) => r.is_active === false,
    );
    const next = await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: {} });
    expect(next.json().data.routing_summary).toEqual({ rules_evaluated: 0, rules_matched: 0, rules_executed: 0 });
  });

  it('keeps the rule on when a 410 comes from the destination it was pointed away from during the attempt', async () => {
    const intake = await start();
    const hooks = await receiver();
    // The old destination holds its answer until the rule has moved, then says 410.
    let answerGone: (() => void) | undefined;
    const old = createServer((_request, response) => {
      answerGone = () => response.writeHead(410).end();
    });
    await new Promise<void>((resolve) => old.listen(0, '127.0.0.1', resolve));
    try {
      await setUp(intake);
      const rule = await webhookRule(intake, `http://127.0.0.1:${(old.address() as AddressInfo).port}/gone`, {});
      await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { n: 1 } });
      await until(
        async () => answerGone,
        (answer) => answer !== undefined,
      );
      const moved = await call(intake, 'PUT', `/api/routing-rules/${rule.rule_id}`, {
        app_id: 'shop',
        rule_name: 'big orders',
        event_type_filter: 'order_created',
        destination_type: 'webhook',
        destination_config: { url: hooks.url },
      });
      expect(moved.statusCode).toBe(200);
      answerGone?.();
      await until(
        () => deliveriesOf(intake, `rule_id=${rule.rule_id}`),
        (deliveries) => deliveries.some((delivery) => delivery.status === 'dead_lettered'),
      );
      expect((await call(intake, 'GET', `/api/routing-rules/${rule.rule_id}`)).json().is_active).toBe(true);
      const next = await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { n: 2 } });
      expect(next.json().data.routing_summary.rules_matched).toBe(1);
      const [delivered] = await hooks.waitFor(1);
      expect(JSON.parse(delivered?.body ?? '{}').data.payload).toEqual({ n: 2 });
    } finally {
      old.closeAllConnections();
      old.close();
    }
  });

  it('refuses a webhook to a private address unless it is allowed', async () => {
    const intake = await start({});
    await setUp(intake);
    const refused = await call(intake, 'POST', '/api/routing-rules', {
      app_id: 'shop',
      rule_name: 'internal',
      destination_type: 'webhook',
      destination_config: { url: 'http://127.0.0.1:9/hooks' },
    });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().code).toBe('routing.invalid-destination');
  });

  it('rotates the signing secret: later attempts are signed with the new one, and the old one for a day', async () => {
    const intake = await start();
    const hooks = await receiver();
    await setUp(intake);
    const rule = await webhookRule(intake, hooks.url, {});
    const rotated = (await call(intake, 'POST', `/api/routing-rules/${rule.rule_id}/rotate-secret`)).json().signing_secret as string;
    expect(rotated).not.toBe(rule.signing_secret);
    await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: {} });
    const [request] = await hooks.waitFor(1);
    const headers = {
      'webhook-id': String(request?.headers['webhook-id']),
      'webhook-timestamp': String(request?.headers['webhook-timestamp']),
      'webhook-signature': String(request?.headers['webhook-signature']),
    };
    const [current, previous] = headers['webhook-signature'].split(' ');
    expect(() => new Webhook(rotated).verify(request?.body ?? '', { ...headers, 'webhook-signature': current ?? '' })).not.toThrow();
    expect(() =>
      new Webhook(rule.signing_secret).verify(request?.body ?? '', { ...headers, 'webhook-signature': current ?? '' }),
    ).toThrow();
    // A receiver still on the old secret verifies too, until it expires (src/routing/secret-rotation.int.test.ts).
    expect(() =>
      new Webhook(rule.signing_secret).verify(request?.body ?? '', { ...headers, 'webhook-signature': previous ?? '' }),
    ).not.toThrow();
  });
});

describe('database destination', () => {
  it('writes the event into the named table, created on first use', async () => {
    const intake = await start();
    await setUp(intake);
    const created = await call(intake, 'POST', '/api/routing-rules', {
      app_id: 'shop',
      rule_name: 'archive',
      destination_type: 'database',
      destination_config: { table: 'order_archive' },
    });
    expect(created.statusCode).toBe(201);
    expect(created.json().signing_secret).toBeUndefined();
    const ingested = await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { total: 5 } });
    const rows = await until(
      () =>
        intake.store.transaction(
          async (tx) =>
            (await sql<{ event_id: string; body: string }>`SELECT * FROM order_archive`.execute(tx.db).catch(() => ({ rows: [] }))).rows,
        ),
      (r) => r.length === 1,
    );
    expect(rows[0]?.event_id).toBe(ingested.json().data.event_id);
    expect(JSON.parse(rows[0]?.body ?? '{}').data.payload).toEqual({ total: 5 });

    // Written as the delivery is scheduled: succeeded at its first attempt, in the item's history too.
    await intake.subscriptions.caughtUp(20_000);
    const eventId = ingested.json().data.event_id as string;
    const listed = (await call(intake, 'GET', `/api/routing/deliveries?event_id=${eventId}`)).json();
    expect(listed.items).toEqual([expect.objectContaining({ status: 'succeeded', attempts: 1 })]);
    const detail = (await call(intake, 'GET', `/api/routing/deliveries/${listed.items[0].delivery_id}`)).json();
    expect(detail.attempt_log).toEqual([expect.objectContaining({ attempt: 1, outcome: 'delivered' })]);
    // One event says it: DataRouted, whose entry carries when the row was written; no attempt events follow.
    const history = await intake.store.readStream(`data-${eventId}`);
    const routed = history.filter((e) => e.type === 'DataRouted');
    expect(routed.map((e) => e.data)).toEqual([
      expect.objectContaining({
        deliveries: [expect.objectContaining({ destination_type: 'database', delivered_at: expect.any(String) })],
      }),
    ]);
    expect(history.filter((e) => e.type.startsWith('Delivery'))).toEqual([]);
    const item = (await call(intake, 'GET', `/api/events/${eventId}`)).json();
    expect(item.routing.deliveries).toEqual([expect.objectContaining({ status: 'succeeded', attempts: 1 })]);

    // A batch's items reach the table together, each once.
    const batch = await call(intake, 'POST', '/api/ingest/shop/batch', {
      events: Array.from({ length: 20 }, (_, i) => ({ event_type: 'order_created', payload: { total: i } })),
    });
    expect(batch.statusCode).toBe(200);
    await intake.subscriptions.caughtUp(20_000);
    const all = await intake.store.transaction(
      async (tx) => (await sql<{ n: number }>`SELECT count(*) AS n FROM order_archive`.execute(tx.db)).rows[0]?.n,
    );
    expect(Number(all)).toBe(21);
  });

  it('refuses a table that belongs to Intake', async () => {
    const intake = await start();
    await setUp(intake);
    const refused = await call(intake, 'POST', '/api/routing-rules', {
      app_id: 'shop',
      rule_name: 'x',
      destination_type: 'database',
      destination_config: { table: 'events' },
    });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().detail).toMatch(/already exists/);
  });
});

describe('routing rules are checked when saved', () => {
  const base = { app_id: 'shop', rule_name: 'r', destination_type: 'webhook', destination_config: { url: 'https://example.com/hook' } };
  it.each([
    ['an unknown operator', { ...base, condition: { 'payload.total': { $bogus: 1 } } }, 'routing.invalid-condition'],
    ['$where', { ...base, condition: { $where: 'true' } }, 'routing.invalid-condition'],
    ['a malformed condition', { ...base, condition: { $or: 5 } }, 'routing.invalid-condition'],
    ['an unknown destination type', { ...base, destination_type: 'carrier-pigeon' }, 'routing.invalid-destination'],
    ['a missing destination config', { ...base, destination_config: undefined }, 'routing.invalid-destination'],
    [
      'an invalid table name',
      { ...base, destination_type: 'database', destination_config: { table: 'orders; DROP TABLE events' } },
      'routing.invalid-destination',
    ],
    [
      'a queue without a broker',
      { ...base, destination_type: 'queue', destination_config: { subject: 'x' } },
      'routing.invalid-destination',
    ],
    [
      'a webhook header value with a line break',
      { ...base, destination_config: { url: 'https://example.com/hook', headers: { 'X-Team': 'growth\r\nX-Injected: 1' } } },
      'routing.invalid-destination',
    ],
    ['an unknown application', { ...base, app_id: 'nobody' }, 'routing.unknown-application'],
  ])('refuses %s with 400', async (_name, body, code) => {
    const intake = await start();
    await setUp(intake);
    const response = await call(intake, 'POST', '/api/routing-rules', body);
    expect(response.statusCode).toBe(400);
    expect(response.json().code).toBe(code);
    expect((await call(intake, 'GET', '/api/routing-rules/app/shop')).json().items).toEqual([]);
  });

  it('supports the full CRUD with toggle, listing by priority', async () => {
    const intake = await start();
    await setUp(intake);
    const low = (await call(intake, 'POST', '/api/routing-rules', { ...base, rule_name: 'low', priority: 1 })).json();
    const high = (await call(intake, 'POST', '/api/routing-rules', { ...base, rule_name: 'high', priority: 5 })).json();
    expect((await call(intake, 'GET', '/api/routing-rules/app/shop')).json().items.map((r: { rule_name: string }) => r.rule_name)).toEqual([
      'high',
      'low',
    ]);
    const updated = await call(intake, 'PUT', `/api/routing-rules/${low.rule_id}`, { ...base, rule_name: 'renamed', priority: 9 });
    expect(updated.json()).toMatchObject({ rule_name: 'renamed', priority: 9 });
    expect(updated.json().signing_secret).toBeUndefined();
    expect((await call(intake, 'PATCH', `/api/routing-rules/${high.rule_id}/toggle`)).json().is_active).toBe(false);
    expect((await call(intake, 'DELETE', `/api/routing-rules/${low.rule_id}`)).statusCode).toBe(204);
    expect((await call(intake, 'GET', `/api/routing-rules/${low.rule_id}`)).statusCode).toBe(404);
  });

  it(`refuses a rule past the ${MAX_RULES_PER_APPLICATION} an application may have, disabled ones counted, and takes one again once one goes`, async () => {
    const intake = await start();
    await setUp(intake);
    await setUp(intake, 'blog');
    let last = '';
    for (let i = 0; i < MAX_RULES_PER_APPLICATION; i++) {
      const created = await call(intake, 'POST', '/api/routing-rules', { ...base, rule_name: `r${i}`, is_active: i % 2 === 0 });
      expect(created.statusCode).toBe(201);
      last = created.json().rule_id;
    }
    const refused = await call(intake, 'POST', '/api/routing-rules', { ...base, rule_name: 'one too many' });
    expect([refused.statusCode, refused.json().code]).toEqual([409, 'routing.too-many-rules']);
    expect((await call(intake, 'POST', '/api/routing-rules', { ...base, app_id: 'blog' })).statusCode).toBe(201);
    expect((await call(intake, 'DELETE', `/api/routing-rules/${last}`)).statusCode).toBe(204);
    expect((await call(intake, 'POST', '/api/routing-rules', { ...base, rule_name: 'in its place' })).statusCode).toBe(201);
  }, 60_000);

  it('keeps a disabled rule disabled through a PUT that leaves is_active out, and changes it when given', async () => {
    const intake = await start();
    await setUp(intake);
    const rule = (await call(intake, 'POST', '/api/routing-rules', { ...base, rule_name: 'quiet' })).json();
    expect((await call(intake, 'PATCH', `/api/routing-rules/${rule.rule_id}/toggle`)).json().is_active).toBe(false);
    const replaced = await call(intake, 'PUT', `/api/routing-rules/${rule.rule_id}`, { ...base, rule_name: 'still quiet' });
    expect(replaced.statusCode).toBe(200);
    expect(replaced.json()).toMatchObject({ rule_name: 'still quiet', is_active: false });
    const enabled = await call(intake, 'PUT', `/api/routing-rules/${rule.rule_id}`, { ...base, is_active: true });
    expect(enabled.json().is_active).toBe(true);
  });

  it('changes only the given fields with PATCH, validating the result, and refuses to move a rule', async () => {
    const intake = await start();
    await setUp(intake);
    const rule = (await call(intake, 'POST', '/api/routing-rules', { ...base, rule_name: 'partial', priority: 3 })).json();
    const patched = await call(intake, 'PATCH', `/api/routing-rules/${rule.rule_id}`, { priority: 7, is_active: false });
    expect(patched.statusCode).toBe(200);
    const { updated_at: _u, signing_secret: _s, ...unchanged } = rule;
    expect(patched.json()).toMatchObject({ ...unchanged, updated_at: expect.any(String), priority: 7, is_active: false });
    const again = await call(intake, 'PATCH', `/api/routing-rules/${rule.rule_id}`, { condition: { 'payload.total': { $gt: 5 } } });
    expect(again.json()).toMatchObject({ priority: 7, is_active: false, condition: { 'payload.total': { $gt: 5 } } });

    const bad = await call(intake, 'PATCH', `/api/routing-rules/${rule.rule_id}`, { condition: { 'payload.total': { $where: 'x' } } });
    expect(bad.statusCode).toBe(400);
    expect((await call(intake, 'PATCH', `/api/routing-rules/${rule.rule_id}`, { app_id: 'other' })).statusCode).toBe(400);
    expect((await call(intake, 'PATCH', `/api/routing-rules/${rule.rule_id}`, {})).statusCode).toBe(400);
    expect((await call(intake, 'GET', `/api/routing-rules/${rule.rule_id}`)).json()).toMatchObject({ priority: 7, is_active: false });
    expect((await call(intake, 'PATCH', '/api/routing-rules/no-such-rule', { priority: 1 })).statusCode).toBe(404);
  });
});

describe.each(backends)('changes to one rule sent at once on %s', (backend) => {
  let intake: TestIntake;
  beforeAll(async () => {
    intake = await startIntakeOn(backend);
    await setUp(intake);
  }, 60_000);
  afterAll(() => intake.dispose());
  const base = {
    app_id: 'shop',
    rule_name: 'r',
    destination_type: 'webhook',
    destination_config: { url: 'https://example.com/hook', headers: { Authorization: 'Bearer first' } },
  };
  const newRule = async () => (await call(intake, 'POST', '/api/routing-rules', base)).json().rule_id as string;
  const statuses = (responses: ReadonlyArray<{ statusCode: number }>) => responses.map((r) => r.statusCode);

  // Each decided again on the rule another left (they answered 409 event-store.concurrency, naming the stream).
  it('lands every PATCH of a different field on the newest rule, the credentials kept included', async () => {
    const ruleId = await newRule();
    const patches = [
      { rule_name: 'renamed' },
      { priority: 7 },
      { condition: { 'payload.total': { $gt: 5 } } },
      { event_type_filter: 'order_created' },
      { ordering_key: 'payload.customer' },
      { destination_config: { url: 'https://example.com/hook', headers: { Authorization: '••••••', 'X-Team': 'growth' } } },
    ];
    const patched = await Promise.all(patches.map((patch) => call(intake, 'PATCH', `/api/routing-rules/${ruleId}`, patch)));
    expect(statuses(patched), patched.find((r) => r.statusCode !== 200)?.body).toEqual(patches.map(() => 200));
    const rule = (await call(intake, 'GET', `/api/routing-rules/${ruleId}`)).json();
    expect(rule).toMatchObject({
      rule_name: 'renamed',
      priority: 7,
      condition: { 'payload.total': { $gt: 5 } },
      event_type_filter: 'order_created',
      ordering_key: 'payload.customer',
      destination_config: { url: 'https://example.com/hook', headers: { Authorization: '••••••', 'X-Team': '••••••' } },
    });
  });

  it('answers every PUT and toggle, one DELETE 204 and the others 404', async () => {
    const ruleId = await newRule();
    const puts = await Promise.all(
      Array.from({ length: 30 }, (_, i) => call(intake, 'PUT', `/api/routing-rules/${ruleId}`, { ...base, rule_name: `v${i}` })),
    );
    expect(statuses(puts), puts.find((r) => r.statusCode !== 200)?.body).toEqual(Array(30).fill(200));
    const toggles = await Promise.all(Array.from({ length: 21 }, () => call(intake, 'PATCH', `/api/routing-rules/${ruleId}/toggle`)));
    expect(statuses(toggles), toggles.find((r) => r.statusCode !== 200)?.body).toEqual(Array(21).fill(200));
    expect((await call(intake, 'GET', `/api/routing-rules/${ruleId}`)).json().is_active).toBe(false);
    const rotated = await Promise.all([1, 2, 3].map(() => call(intake, 'POST', `/api/routing-rules/${ruleId}/rotate-secret`)));
    expect(statuses(rotated)).toEqual([200, 200, 200]);
    const deleted = await Promise.all(Array.from({ length: 10 }, () => call(intake, 'DELETE', `/api/routing-rules/${ruleId}`)));
    expect(statuses(deleted).sort()).toEqual([204, ...Array(9).fill(404)]);
    expect(deleted.filter((r) => r.statusCode === 404).map((r) => r.json().code)).toEqual(Array(9).fill('routing.rule-not-found'));
  });
});

/** A receiver that answers every request 503 with `Retry-After: 999999` (capped at a day): a retry a day away. */
async function unavailableReceiver() {
  let requests = 0;
  const server = createServer((request, response) => {
    requests++;
    request.resume();
    response.writeHead(503, { 'retry-after': '999999' }).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/busy`, requests: () => requests };
}

describe.each(backends)('a change of a rule with deliveries waiting for a retry on %s', (backend) => {
  let intake: TestIntake;
  beforeAll(async () => {
    intake = await startIntakeOn(backend, { WEBHOOK_ALLOWED_HOSTS: '127.0.0.1' });
    await setUp(intake);
  }, 60_000);
  afterAll(() => intake.dispose());

  const delivery = async (deliveryId: unknown) =>
    (await call(intake, 'GET', `/api/routing/deliveries/${String(deliveryId)}`)).json() as Record<string, unknown> & {
      attempt_log: Array<{ status_code: number | null }>;
    };

  /** A rule to a receiver that put its one delivery off for a day, and that delivery. */
  async function waitingADay() {
    const old = await unavailableReceiver();
    const rule = await webhookRule(intake, old.url, {});
    await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { total: 1 } });
    const [waiting] = await until(
      () => deliveriesOf(intake, `rule_id=${rule.rule_id}&status=retrying`),
      (items) => items.length === 1,
    );
    expect(Date.parse(String(waiting?.next_attempt_at)) - Date.now()).toBeGreaterThan(23 * 3600_000);
    return { old, rule, waiting: waiting as Record<string, unknown> };
  }

  it('sends them to the new destination at once, with their id and attempt count, and leaves them waiting when it stays', async () => {
    const { old, rule, waiting } = await waitingADay();
    // Renamed, or given the same URL: still the destination that asked for the wait.
    expect((await call(intake, 'PATCH', `/api/routing-rules/${rule.rule_id}`, { rule_name: 'renamed' })).statusCode).toBe(200);
    expect((await call(intake, 'PATCH', `/api/routing-rules/${rule.rule_id}`, { destination_config: { url: old.url } })).statusCode).toBe(
      200,
    );
    await sleep(300);
    expect(await delivery(waiting.delivery_id)).toMatchObject({
      status: 'retrying',
      attempts: 1,
      next_attempt_at: waiting.next_attempt_at,
    });
    expect(old.requests()).toBe(1);

    const hooks = await receiver();
    const moved = await call(intake, 'PATCH', `/api/routing-rules/${rule.rule_id}`, { destination_config: { url: hooks.url } });
    expect(moved.statusCode).toBe(200);
    const [request] = await hooks.waitFor(1, 5000);
    expect(request?.headers['webhook-id']).toBe(waiting.delivery_id);
    const sent = await until(
      () => delivery(waiting.delivery_id),
      (d) => d.status === 'succeeded',
    );
    expect(sent).toMatchObject({ attempts: 2, webhook_id: waiting.delivery_id });
    expect(sent.attempt_log.map((a) => a.status_code)).toEqual([503, 200]);
    expect(old.requests()).toBe(1);
  });

  it('names the new type of destination, in the delivery and the item view, once it went to a table instead of a webhook', async () => {
    const { old, rule, waiting } = await waitingADay();
    const table = `moved_${String(rule.rule_id)
      .replace(/[^a-z0-9]/gi, '')
      .slice(0, 12)}`;
    const moved = await call(intake, 'PATCH', `/api/routing-rules/${rule.rule_id}`, {
      destination_type: 'database',
      destination_config: { table },
    });
    expect(moved.statusCode).toBe(200);
    const sent = await until(
      () => delivery(waiting.delivery_id),
      (d) => d.status === 'succeeded',
    );
    expect(sent).toMatchObject({ destination_type: 'database', attempts: 2 });
    expect(old.requests()).toBe(1);
    // The rules of the tests before match the item too: its delivery by this rule is the one looked at.
    const routed = await until(
      async () =>
        (
          (await call(intake, 'GET', `/query/${String(waiting.event_id)}`)).json().routing.deliveries as Array<Record<string, unknown>>
        ).find((d) => d.delivery_id === waiting.delivery_id),
      (found) => found?.status === 'succeeded',
    );
    expect(routed).toMatchObject({ destination_type: 'database', attempts: 2 });
  });

  it('sends at once to the new destination a delivery whose attempt to the old one was in flight at the change', async () => {
    // The old destination holds its answer until the rule has moved, then puts the retry off for a day.
    let answerBusy: (() => void) | undefined;
    const old = createServer((request, response) => {
      request.resume();
      answerBusy = () => response.writeHead(503, { 'retry-after': '999999' }).end();
    });
    await new Promise<void>((resolve) => old.listen(0, '127.0.0.1', resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          old.closeAllConnections();
          old.close(() => resolve());
        }),
    );
    const rule = await webhookRule(intake, `http://127.0.0.1:${(old.address() as AddressInfo).port}/busy`, {});
    await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { total: 1 } });
    await until(
      async () => answerBusy,
      (answer) => answer !== undefined,
    );
    const hooks = await receiver();
    expect((await call(intake, 'PATCH', `/api/routing-rules/${rule.rule_id}`, { destination_config: { url: hooks.url } })).statusCode).toBe(
      200,
    );
    answerBusy?.();
    const [request] = await hooks.waitFor(1, 5000);
    const [sent] = await until(
      () => deliveriesOf(intake, `rule_id=${rule.rule_id}`),
      (items) => items[0]?.status === 'succeeded',
    );
    expect(request?.headers['webhook-id']).toBe(sent?.delivery_id);
    expect((await delivery(sent?.delivery_id)).attempt_log.map((a) => a.status_code)).toEqual([503, 200]);
  });

  it('keeps those of a disabled rule waiting through the change, and sends them once it is switched on', async () => {
    const { rule, waiting } = await waitingADay();
    expect((await call(intake, 'PATCH', `/api/routing-rules/${rule.rule_id}/toggle`)).json().is_active).toBe(false);
    const hooks = await receiver();
    expect((await call(intake, 'PATCH', `/api/routing-rules/${rule.rule_id}`, { destination_config: { url: hooks.url } })).statusCode).toBe(
      200,
    );
    await sleep(1500);
    expect(hooks.received).toHaveLength(0);
    expect(await delivery(waiting.delivery_id)).toMatchObject({ status: 'retrying', attempts: 1 });

    expect((await call(intake, 'PATCH', `/api/routing-rules/${rule.rule_id}/toggle`)).json().is_active).toBe(true);
    const [request] = await hooks.waitFor(1, 5000);
    expect(request?.headers['webhook-id']).toBe(waiting.delivery_id);
    await until(
      () => delivery(waiting.delivery_id),
      (d) => d.status === 'succeeded' && d.attempts === 2,
    );
  });
});

describe.each(backends)('the delete of a rule with deliveries waiting on %s', (backend) => {
  let intake: TestIntake;
  beforeAll(async () => {
    intake = await startIntakeOn(backend, { WEBHOOK_ALLOWED_HOSTS: '127.0.0.1' });
    await setUp(intake);
  }, 60_000);
  afterAll(() => intake.dispose());

  type Detail = Record<string, unknown> & { attempt_log: Array<{ status_code: number | null; error: string | null }> };
  const delivery = async (deliveryId: unknown) =>
    (await call(intake, 'GET', `/api/routing/deliveries/${String(deliveryId)}`)).json() as Detail;
  const shownOnItem = async (itemId: unknown) =>
    ((await call(intake, 'GET', `/api/events/${String(itemId)}`)).json() as { routing?: { deliveries: Array<Record<string, unknown>> } })
      .routing?.deliveries ?? [];

  it('dead-letters the one waiting a day for its retry and the one behind it at once, with no attempt made', async () => {
    const old = await unavailableReceiver();
    const rule = await webhookRule(intake, old.url, {});
    expect((await call(intake, 'PATCH', `/api/routing-rules/${rule.rule_id}`, { ordering_key: 'payload.customer' })).statusCode).toBe(200);
    const first = (await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { customer: 'c1' } })).json();
    await until(
      () => deliveriesOf(intake, `rule_id=${rule.rule_id}&status=retrying`),
      (items) => items.length === 1,
    );
    // Of the same customer: it waits, never tried, behind the retry of the first.
    const second = (await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { customer: 'c1' } })).json();
    const [retrying, pending] = await until(
      async () => [
        ...(await deliveriesOf(intake, `rule_id=${rule.rule_id}&status=retrying`)),
        ...(await deliveriesOf(intake, `rule_id=${rule.rule_id}&status=pending`)),
      ],
      (items) => items.length === 2,
    );
    expect(retrying).toMatchObject({ event_id: first.data.event_id, attempts: 1 });
    expect(pending).toMatchObject({ event_id: second.data.event_id, attempts: 0 });

    expect((await call(intake, 'DELETE', `/api/routing-rules/${rule.rule_id}`)).statusCode).toBe(204);
    // In the delete's transaction: no wait for a claim, nor for the next attempt a day away.
    expect(await delivery(retrying?.delivery_id)).toMatchObject({
      status: 'dead_lettered',
      attempts: 1,
      next_attempt_at: null,
      last_error: 'the rule was deleted',
      attempt_log: [expect.objectContaining({ status_code: 503 })],
    });
    expect(await delivery(pending?.delivery_id)).toMatchObject({
      status: 'dead_lettered',
      attempts: 0,
      last_error: 'the rule was deleted',
      attempt_log: [],
    });
    expect(await deliveriesOf(intake, `rule_id=${rule.rule_id}&status=retrying`)).toEqual([]);
    // The events' view says the same.
    for (const [event, attempts] of [
      [first, 1],
      [second, 0],
    ] as const)
      await until(
        () => shownOnItem(event.data.event_id),
        (shown) =>
          shown.length === 1 &&
          shown[0]?.status === 'dead_lettered' &&
          shown[0]?.attempts === attempts &&
          shown[0]?.last_error === 'the rule was deleted',
      );
    await sleep(300);
    expect(old.requests()).toBe(1);
  });

  it('dead-letters a backlog larger than a transaction takes, a slice at a time after the delete, none sent meanwhile', async () => {
    const old = await unavailableReceiver();
    const rule = await webhookRule(intake, old.url, { 'payload.backlog': { $gt: 0 } });
    // Past two slices of the sweep (DEAD_LETTER_SLICE): the delete takes one, the sweeper the others.
    const items = 2 * DEAD_LETTER_SLICE + 100;
    for (let sent = 0; sent < items; sent += 500) {
      const events = Array.from({ length: Math.min(500, items - sent) }, () => ({ event_type: 'order_created', payload: { backlog: 1 } }));
      expect((await call(intake, 'POST', '/api/ingest/shop/batch', { events })).statusCode).toBe(200);
    }
    let attemptsSeen = 0;
    const countOf = async (status: string) => {
      let count = 0;
      attemptsSeen = 0;
      let cursor: string | null = null;
      do {
        const page = (
          await call(
            intake,
            'GET',
            `/api/routing/deliveries?rule_id=${rule.rule_id}&status=${status}&limit=1000${cursor ? `&cursor=${cursor}` : ''}`,
          )
        ).json();
        count += (page.items as unknown[]).length;
        for (const item of page.items as Array<{ attempts: number }>) attemptsSeen += item.attempts;
        cursor = page.next_cursor as string | null;
      } while (cursor !== null);
      return count;
    };
    // The receiver's 503 with a long Retry-After opened the circuit: the first few retrying, the rest never tried.
    await until(
      async () => [await countOf('retrying'), await countOf('pending')],
      ([retrying = 0, pending = 0]) => retrying > 0 && retrying + pending === items,
      20_000,
    );
    await sleep(300);
    const sentBefore = old.requests();

    expect((await call(intake, 'DELETE', `/api/routing-rules/${rule.rule_id}`)).statusCode).toBe(204);
    await until(
      async () => [await countOf('pending'), await countOf('retrying'), await countOf('dead_lettered')],
      ([pending, retrying, dead]) => dead === items && pending === 0 && retrying === 0,
      20_000,
    );
    // No attempt was made of those left to the sweep: the claim held the deleted rule's backlog back.
    expect(attemptsSeen).toBe(sentBefore);
    const [last] = await deliveriesOf(intake, `rule_id=${rule.rule_id}&status=dead_lettered&limit=1`);
    expect(last).toMatchObject({ attempts: 0, last_error: 'the rule was deleted' });
    expect(old.requests()).toBe(sentBefore);
  });

  it('dead-letters the one in flight at the delete when its attempt finishes, keeping what the receiver answered', async () => {
    let answerBusy: (() => void) | undefined;
    const old = createServer((request, response) => {
      request.resume();
      answerBusy = () => response.writeHead(503, { 'retry-after': '999999' }).end();
    });
    await new Promise<void>((resolve) => old.listen(0, '127.0.0.1', resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          old.closeAllConnections();
          old.close(() => resolve());
        }),
    );
    const rule = await webhookRule(intake, `http://127.0.0.1:${(old.address() as AddressInfo).port}/busy`, {});
    await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { total: 1 } });
    await until(
      async () => answerBusy,
      (answer) => answer !== undefined,
    );
    expect((await call(intake, 'DELETE', `/api/routing-rules/${rule.rule_id}`)).statusCode).toBe(204);
    const [inFlight] = await deliveriesOf(intake, `rule_id=${rule.rule_id}`);
    expect(inFlight).toMatchObject({ status: 'pending', attempts: 0 });
    answerBusy?.();
    const given = await until(
      () => delivery(inFlight?.delivery_id),
      (d) => d.status !== 'pending',
    );
    expect(given).toMatchObject({
      status: 'dead_lettered',
      attempts: 1,
      next_attempt_at: null,
      last_error: 'the rule was deleted',
      attempt_log: [expect.objectContaining({ status_code: 503, error: expect.stringContaining('503') })],
    });
  });
});

describe('the OpenAPI document of the rule operations', () => {
  it('declares what each can answer: the 409 of a rule too many, and the 503 of a rule too busy to change', async () => {
    const intake = await start();
    const doc = (await call(intake, 'GET', '/openapi.json')).json<{ paths: Record<string, Record<string, { responses: object }>> }>();
    const declared = (method: string, path: string) => Object.keys(doc.paths[path]?.[method]?.responses ?? {});
    expect(declared('post', '/api/routing-rules')).toContain('409');
    const changes: Array<[string, string]> = [
      ['put', '/api/routing-rules/{rule_id}'],
      ['patch', '/api/routing-rules/{rule_id}'],
      ['delete', '/api/routing-rules/{rule_id}'],
      ['patch', '/api/routing-rules/{rule_id}/toggle'],
      ['post', '/api/routing-rules/{rule_id}/rotate-secret'],
    ];
    for (const [method, path] of changes)
      expect(declared(method, path), `${method} ${path}`).toEqual(expect.arrayContaining(['404', '503']));
  });
});

describe('tenant isolation', () => {
  it('lets a write key write only as its own application, and do nothing else', async () => {
    const intake = await start();
    const { writeKey } = await setUp(intake, 'A');
    await setUp(intake, 'B');
    const event = { event_type: 'x', payload: {} };
    expect((await call(intake, 'POST', '/api/ingest/A', event, writeKey)).statusCode).toBe(201);
    expect((await call(intake, 'POST', '/api/ingest/B', event, writeKey)).statusCode).toBe(403);
    expect((await call(intake, 'POST', '/api/ingest/B/batch', { events: [event] }, writeKey)).statusCode).toBe(403);
    expect((await call(intake, 'POST', '/ingest', { partner_id: 'B', payload: {} }, writeKey)).statusCode).toBe(403);
    expect((await call(intake, 'POST', '/ingest', { partner_id: 'A', payload: {} }, writeKey)).statusCode).toBe(201);
    for (const url of ['/api/events/app/A', '/ingest/all', '/query/all', '/api/applications', '/api/routing-rules/app/A']) {
      expect((await call(intake, 'GET', url, undefined, writeKey)).statusCode, url).toBe(403);
    }
    expect(
      (
        await call(
          intake,
          'POST',
          '/api/routing-rules',
          { app_id: 'A', rule_name: 'r', destination_type: 'database', destination_config: { table: 't' } },
          writeKey,
        )
      ).statusCode,
    ).toBe(403);
    expect((await call(intake, 'POST', '/api/applications/A/keys', {}, writeKey)).statusCode).toBe(403);
  });

  it('stops accepting a revoked key at once', async () => {
    const intake = await start();
    const { writeKey, keyId } = await setUp(intake);
    expect((await call(intake, 'DELETE', `/api/applications/shop/keys/${keyId}`)).statusCode).toBe(204);
    expect((await call(intake, 'POST', '/api/ingest/shop', { event_type: 'x', payload: {} }, writeKey)).statusCode).toBe(401);
    const keys = (await call(intake, 'GET', '/api/applications/shop/keys')).json().items;
    expect(keys[0]).toMatchObject({ key_id: keyId, revoked_at: expect.any(String) });
    expect(JSON.stringify(keys)).not.toMatch(/wk_/);
  });

  it('creates a source the admin writes as for the first time', async () => {
    const intake = await start();
    expect((await call(intake, 'GET', '/api/applications/newcomer')).statusCode).toBe(404);
    expect((await call(intake, 'POST', '/api/ingest/newcomer', { event_type: 'x', payload: {} })).statusCode).toBe(201);
    expect((await call(intake, 'GET', '/api/applications/newcomer')).json()).toMatchObject({ app_id: 'newcomer' });
  });
});

describe('idempotency and batches', () => {
  it('returns the first result for a retried Idempotency-Key, also after a restart, and stores nothing new', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-idem-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const first = await startTestIntake({}, {}, dir);
    const headers = { ...auth, 'idempotency-key': 'order-77' };
    const original = await call(first, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { n: 1 } }, headers);
    const retry = await call(first, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { n: 1 } }, headers);
    expect(retry.json()).toEqual(original.json());
    expect(retry.headers['idempotent-replayed']).toBe('true');
    await first.dispose();
    const second = await start({}, dir);
    const later = await call(second, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { n: 1 } }, headers);
    expect(later.json().data.event_id).toBe(original.json().data.event_id);
    const stored = (await second.store.readAll({ after: 0, limit: 1000 })).filter((e) => e.type === 'DataIngested');
    expect(stored).toHaveLength(1);
  });

  it('forgets a key once its window has passed: its record is deleted, and the key stores a new event', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-forget-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const clock = fixedClock('2026-12-02T10:00:00.000Z');
    const headers = { ...auth, 'idempotency-key': 'order-78' };
    const sent = (intake: TestIntake) =>
      call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { n: 1 } }, headers);
    const records = async (intake: TestIntake) =>
      (await sql<{ n: number }>`SELECT count(*) AS n FROM ingest_idempotency`.execute(intake.db)).rows[0]?.n;
    const first = await startTestIntake({ IDEMPOTENCY_WINDOW_HOURS: '1' }, { clock }, dir);
    await setUp(first);
    const firstId = (await sent(first)).json().data.event_id;
    expect(await records(first)).toBe(1);
    await first.dispose();
    // Two hours on (its window, and the hour kept past it), a start deletes it a second after it began.
    clock.advance(2 * 3600_000 + 1);
    const later = await startTestIntake({ IDEMPOTENCY_WINDOW_HOURS: '1' }, { clock }, dir);
    cleanups.push(() => later.dispose());
    for (const deadline = performance.now() + 10_000; (await records(later)) !== 0 && performance.now() < deadline;)
      await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await records(later)).toBe(0);
    expect((await sent(later)).json().data.event_id).not.toBe(firstId);
  });

  it('refuses an Idempotency-Key sent again with another event (422), while a message_id names the message', async () => {
    const intake = await start();
    await setUp(intake);
    const headers = { ...auth, 'idempotency-key': 'checkout-5' };
    const first = await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { n: 1 } }, headers);
    const other = await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { n: 2 } }, headers);
    expect(other.statusCode).toBe(422);
    expect(other.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(other.json().code).toBe('ingestion.idempotency-key-reused');
    const retry = await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { n: 1 } }, headers);
    expect(retry.json()).toEqual(first.json());
    // A message id is the message's: a changed copy is still that message, answered as a duplicate.
    const byId = await call(intake, 'POST', '/api/ingest/shop', { event_type: 'x', payload: { v: 1 }, message_id: 'msg-9' });
    const changed = await call(intake, 'POST', '/api/ingest/shop', { event_type: 'x', payload: { v: 2 }, message_id: 'msg-9' });
    expect([changed.statusCode, changed.json().data.event_id]).toEqual([201, byId.json().data.event_id]);
    // With a header as well, the message id decides: a retry under a new header is still that message.
    const both = { event_type: 'x', payload: { v: 3 }, message_id: 'msg-10' };
    const firstOfBoth = await call(intake, 'POST', '/api/ingest/shop', both, { ...auth, 'idempotency-key': 'attempt-1' });
    const newHeader = await call(intake, 'POST', '/api/ingest/shop', both, { ...auth, 'idempotency-key': 'attempt-2' });
    const noHeader = await call(intake, 'POST', '/api/ingest/shop', both);
    expect([newHeader.json().data.event_id, noHeader.json().data.event_id]).toEqual([
      firstOfBoth.json().data.event_id,
      firstOfBoth.json().data.event_id,
    ]);
    expect(newHeader.headers['idempotent-replayed']).toBe('true');
    // In a retried batch, an event that is not the one first sent at its place is rejected alone.
    const batchHeaders = { ...auth, 'idempotency-key': 'export-1' };
    const events = [
      { event_type: 'a', payload: { n: 1 } },
      { event_type: 'b', payload: { n: 1 } },
    ];
    await call(intake, 'POST', '/api/ingest/shop/batch', { events }, batchHeaders);
    const resent = (
      await call(intake, 'POST', '/api/ingest/shop/batch', { events: [events[0], { event_type: 'b', payload: { n: 9 } }] }, batchHeaders)
    ).json();
    expect(resent.results.map((r: { status: string }) => r.status)).toEqual(['duplicate', 'rejected']);
    expect(resent.results[1].reason).toMatch(/Idempotency-Key "export-1#1" was sent with another event/);
    const stored = (await intake.store.readAll({ after: 0, limit: 1000 })).filter((e) => e.type === 'DataIngested');
    expect(stored).toHaveLength(5);
  });

  it("keeps request keys, message ids and a batch's derived keys apart: one kind never drops an event of another", async () => {
    const intake = await start();
    await setUp(intake);
    const ingestWith = (body: object, key?: string, path = '/api/ingest/shop') =>
      call(intake, 'POST', path, body, key === undefined ? auth : { ...auth, 'idempotency-key': key });
    const byMessage = await ingestWith({ event_type: 'viewed', payload: { n: 1 }, message_id: 'shared-1' });
    const byHeader = await ingestWith({ event_type: 'order_created', payload: { total: 1234 } }, 'shared-1');
    expect(byHeader.headers['idempotent-replayed']).toBeUndefined();
    expect(byHeader.json().data.event_id).not.toBe(byMessage.json().data.event_id);
    const headerFirst = await ingestWith({ event_type: 'a', payload: {} }, 'shared-2');
    const messageAfter = await ingestWith({ event_type: 'b', payload: {}, message_id: 'shared-2' });
    expect(messageAfter.json().data.event_id).not.toBe(headerFirst.json().data.event_id);
    const single = await ingestWith({ event_type: 'c', payload: {} }, 'export#0');
    const batch = (await ingestWith({ events: [{ event_type: 'd', payload: { x: 1 } }] }, 'export', '/api/ingest/shop/batch')).json();
    expect(batch.results[0]).toMatchObject({ status: 'accepted' });
    expect(batch.results[0].event_id).not.toBe(single.json().data.event_id);
    const stored = (await intake.store.readAll({ after: 0, limit: 1000 })).filter((e) => e.type === 'DataIngested');
    expect(stored).toHaveLength(6);
  });

  it('answers a retry of a key recorded before keys were kept apart by kind, as the first request', async () => {
    const intake = await start();
    await setUp(intake);
    const first = await call(
      intake,
      'POST',
      '/api/ingest/shop',
      { event_type: 'a', payload: { n: 1 } },
      { ...auth, 'idempotency-key': 'old-key' },
    );
    const byId = await call(intake, 'POST', '/api/ingest/shop', { event_type: 'b', payload: {}, message_id: 'old-id' });
    // As an earlier release recorded them: the key as sent, with no prefix of its kind.
    await intake.store.transaction((tx) =>
      sql`UPDATE ingest_idempotency SET idem_key = substr(idem_key, 3) WHERE idem_key IN ('r:old-key', 'm:old-id')`.execute(tx.db),
    );
    const retry = await call(
      intake,
      'POST',
      '/api/ingest/shop',
      { event_type: 'a', payload: { n: 1 } },
      { ...auth, 'idempotency-key': 'old-key' },
    );
    expect([retry.headers['idempotent-replayed'], retry.json().data.event_id]).toEqual(['true', first.json().data.event_id]);
    const reused = await call(
      intake,
      'POST',
      '/api/ingest/shop',
      { event_type: 'a', payload: { n: 2 } },
      { ...auth, 'idempotency-key': 'old-key' },
    );
    expect(reused.statusCode).toBe(422);
    const copy = await call(intake, 'POST', '/api/ingest/shop', { event_type: 'b', payload: {}, message_id: 'old-id' });
    expect(copy.json().data.event_id).toBe(byId.json().data.event_id);
    // The old record of one kind answers no key of the other.
    const crossed = await call(
      intake,
      'POST',
      '/api/ingest/shop',
      { event_type: 'c', payload: {} },
      { ...auth, 'idempotency-key': 'old-id' },
    );
    expect(crossed.headers['idempotent-replayed']).toBeUndefined();
    const stored = (await intake.store.readAll({ after: 0, limit: 1000 })).filter((e) => e.type === 'DataIngested');
    expect(stored).toHaveLength(3);
  });

  it('answers the same event with its keys in another order as a retry, and a record of an older release too', async () => {
    const intake = await start();
    await setUp(intake);
    const ingestWith = (payload: string, key: string) =>
      intake.app.inject({
        method: 'POST',
        url: '/api/ingest/shop',
        headers: { ...auth, 'content-type': 'application/json', 'idempotency-key': key },
        payload: `{"event_type":"order","payload":${payload}}`,
      });
    const first = await ingestWith('{"b":2,"a":{"y":1,"x":[{"q":1,"p":2}]}}', 'K-order');
    const reordered = await ingestWith('{"a":{"x":[{"p":2,"q":1}],"y":1},"b":2}', 'K-order');
    expect([reordered.statusCode, reordered.headers['idempotent-replayed']]).toEqual([201, 'true']);
    expect(reordered.json().data.event_id).toBe(first.json().data.event_id);
    // Array order is the event's: another order is another event.
    expect((await ingestWith('{"b":2,"a":{"y":1,"x":[{"q":1,"p":2},0]}}', 'K-order')).statusCode).toBe(422);

    // As a release before recorded it: the fingerprint of the keys as sent.
    const old = await ingestWith('{"b":1,"a":1}', 'K-old');
    const legacy = createHash('sha256')
      .update(JSON.stringify(['order', { b: 1, a: 1 }]))
      .digest('base64url');
    await intake.store.transaction((tx) =>
      sql`UPDATE ingest_idempotency SET fingerprint = ${legacy} WHERE idem_key = 'r:K-old'`.execute(tx.db),
    );
    const retried = await ingestWith('{"b":1,"a":1}', 'K-old');
    expect([retried.headers['idempotent-replayed'], retried.json().data.event_id]).toEqual(['true', old.json().data.event_id]);
  });

  it('takes a key that begins like a stored one (`m:X`) for a key of its own, not for `X` stored today', async () => {
    const intake = await start();
    await setUp(intake);
    const ingestWith = (body: object, key?: string) =>
      call(intake, 'POST', '/api/ingest/shop', body, key === undefined ? auth : { ...auth, 'idempotency-key': key });
    const first = await ingestWith({ event_type: 'a', payload: {}, message_id: 'order-77' });
    const prefixed = await ingestWith({ event_type: 'a', payload: {}, message_id: 'm:order-77' });
    expect(prefixed.json().data.event_id).not.toBe(first.json().data.event_id);
    await ingestWith({ event_type: 'b', payload: { n: 1 } }, 'ik-55');
    const keyed = await ingestWith({ event_type: 'c', payload: { n: 2 } }, 'r:ik-55');
    expect([keyed.statusCode, keyed.headers['idempotent-replayed']]).toEqual([201, undefined]);
    const stored = (await intake.store.readAll({ after: 0, limit: 1000 })).filter((e) => e.type === 'DataIngested');
    expect(stored).toHaveLength(4);
  });

  it('answers a batch with a receipt per event: accepted, duplicate or rejected', async () => {
    const intake = await start();
    await setUp(intake);
    const response = await call(intake, 'POST', '/api/ingest/shop/batch', {
      events: [
        { event_type: 'order_created', payload: { n: 1 }, message_id: 'm-1' },
        { event_type: 'order_created', payload: 'not an object' },
        { event_type: 'order_created', payload: { n: 1 }, message_id: 'm-1' },
        { event_type: ' padded', payload: {} },
        { event_type: 'page_view', payload: { path: '/' } },
      ],
    });
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body).toMatchObject({ success: false, accepted: 2, duplicates: 1, rejected: 2 });
    expect(body.results.map((r: { status: string }) => r.status)).toEqual(['accepted', 'rejected', 'duplicate', 'rejected', 'accepted']);
    expect(body.results[2].event_id).toBe(body.results[0].event_id);
    expect(body.results[1].errors[0].path).toBe('payload');
    // Each rejection says why as a code too, as a problem would.
    expect(body.results.map((r: { code?: string }) => r.code)).toEqual([
      undefined,
      'ingestion.invalid-item',
      undefined,
      'ingestion.invalid-item',
      undefined,
    ]);
    expect(
      (
        await call(intake, 'POST', '/api/ingest/shop/batch', {
          events: Array.from({ length: 501 }, () => ({ event_type: 'x', payload: {} })),
        })
      ).statusCode,
    ).toBe(400);
  });

  it('rejects alone a batch event whose message_id is no id, rather than storing it without deduplication', async () => {
    const intake = await start();
    await setUp(intake);
    const send = async () =>
      (
        await call(intake, 'POST', '/api/ingest/shop/batch', {
          events: [
            { event_type: 'm', payload: { x: 1 }, message_id: 12345 },
            { event_type: 'm', payload: { x: 2 }, message_id: 'x'.repeat(256) },
            { event_type: 'm', payload: { x: 3 }, message_id: 'fine-1' },
          ],
        })
      ).json();
    const first = await send();
    expect(first.results.map((r: { status: string }) => r.status)).toEqual(['rejected', 'rejected', 'accepted']);
    expect(first.results[0].errors[0].path).toBe('message_id');
    expect((await send()).results.map((r: { status: string }) => r.status)).toEqual(['rejected', 'rejected', 'duplicate']);
  });

  it('stores a batch retried with the same Idempotency-Key once, answering duplicates with the first ids', async () => {
    const intake = await start();
    await setUp(intake);
    const headers = { ...auth, 'idempotency-key': 'nightly-export-3' };
    const batch = {
      events: [
        { event_type: 'order_created', payload: { n: 1 } },
        { event_type: 'order_created', payload: { n: 2 }, message_id: 'own-key' },
      ],
    };
    const first = (await call(intake, 'POST', '/api/ingest/shop/batch', batch, headers)).json();
    const retry = (await call(intake, 'POST', '/api/ingest/shop/batch', batch, headers)).json();
    expect(first).toMatchObject({ accepted: 2, duplicates: 0 });
    expect(retry).toMatchObject({ accepted: 0, duplicates: 2 });
    expect(retry.results.map((r: { event_id: string }) => r.event_id)).toEqual(first.results.map((r: { event_id: string }) => r.event_id));
    // Another key is another batch; the event with its own message_id stays a duplicate.
    const other = (await call(intake, 'POST', '/api/ingest/shop/batch', batch, { ...auth, 'idempotency-key': 'nightly-export-4' })).json();
    expect(other.results.map((r: { status: string }) => r.status)).toEqual(['accepted', 'duplicate']);
    const stored = (await intake.store.readAll({ after: 0, limit: 1000 })).filter((e) => e.type === 'DataIngested');
    expect(stored).toHaveLength(3);
  });

  it('stores a legacy message as an event of type "message"', async () => {
    const intake = await start();
    const response = await call(intake, 'POST', '/api/messages/shop', { text: 'hello' });
    expect(response.statusCode).toBe(201);
    await intake.subscriptions.caughtUp();
    const event = (await call(intake, 'GET', `/api/events/${response.json().data.event_id}`)).json();
    expect(event).toMatchObject({ event_type: 'message', payload: { text: 'hello' }, metadata: { channel: 'messages' } });
  });

  it('lists an application’s events with filters and pages', async () => {
    const intake = await start();
    for (let i = 0; i < 5; i++) await call(intake, 'POST', '/api/ingest/shop', { event_type: i % 2 ? 'a' : 'b', payload: { i } });
    await intake.subscriptions.caughtUp();
    const onlyA = (await call(intake, 'GET', '/api/events/app/shop?event_type=a')).json();
    expect(onlyA.items.map((e: { payload: { i: number } }) => e.payload.i)).toEqual([1, 3]);
    const page = (await call(intake, 'GET', '/api/events/app/shop?limit=2')).json();
    expect(page.items).toHaveLength(2);
    expect(page.next_cursor).not.toBeNull();
    const future = (
      await call(intake, 'GET', `/api/events/app/shop?from=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)
    ).json();
    expect(future.items).toEqual([]);
    const backwards = await call(intake, 'GET', '/api/events/app/shop?from=2026-11-25T00:00:00Z&to=2026-11-24T00:00:00Z');
    expect([backwards.statusCode, backwards.json().code]).toEqual([400, 'query.invalid-range']);
    const empty = await call(intake, 'GET', '/api/events/app/shop?from=2026-11-24T00:00:00Z&to=2026-11-24T00:00:00Z');
    expect([empty.statusCode, empty.json().code]).toEqual([400, 'query.invalid-range']);
  });
});

const redisUrl = process.env.TEST_REDIS_URL;
if (!redisUrl) console.warn('skipping the queue-destination routing test: TEST_REDIS_URL is not set');

describe.skipIf(!redisUrl)('queue destination', () => {
  it('publishes a matching event to a Redis stream through a rule', async () => {
    const { Redis } = await import('ioredis');
    const redis = new Redis(redisUrl ?? '');
    const stream = `intake-test-${Math.random().toString(36).slice(2)}`;
    cleanups.push(async () => {
      await redis.del(stream);
      redis.disconnect();
    });
    const intake = await start({ ...FAST_RETRIES, REDIS_URL: redisUrl ?? '' });
    await setUp(intake);
    const created = await call(intake, 'POST', '/api/routing-rules', {
      app_id: 'shop',
      rule_name: 'to redis',
      condition: { 'payload.total': { $gte: 10 } },
      destination_type: 'queue',
      destination_config: { broker: 'redis', stream },
    });
    expect(created.statusCode).toBe(201);
    const ingested = await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { total: 10 } });
    await call(intake, 'POST', '/api/ingest/shop', { event_type: 'order_created', payload: { total: 1 } });
    const entries = await until(
      () => redis.xrange(stream, '-', '+'),
      (rows) => rows.length >= 1,
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(await redis.xlen(stream)).toBe(1);
    const fields = Object.fromEntries(
      (entries[0]?.[1] ?? []).reduce<string[][]>(
        (pairs, value, i, all) => (i % 2 === 0 ? [...pairs, [value, all[i + 1] ?? '']] : pairs),
        [],
      ),
    );
    expect(JSON.parse(fields.body ?? '{}').data.event_id).toBe(ingested.json().data.event_id);
    expect(fields.delivery_id).toMatch(/^msg_/);
  });
});
