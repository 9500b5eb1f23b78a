import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, type TestIntake } from '../../../../test/support/embedded-intake.js';
import { backends, everyPage, expectCursorRefused, startIntakeOn } from '../../../../test/support/paging.js';
import { startScriptedReceiver, type ScriptedReceiver } from '../../../../test/support/scripted-receiver.js';

type Rule = { rule_id: string; priority: number; created_at: string };
type Delivery = { delivery_id: string; event_id: string; status: string; created_at: string };

/** Newest first, as the deliveries lists promise: by creation time, then by id, both descending. */
const newestFirst = (a: Delivery, b: Delivery) =>
  a.created_at === b.created_at ? (a.delivery_id < b.delivery_id ? 1 : -1) : a.created_at < b.created_at ? 1 : -1;

describe.each(backends)('paged routing lists on %s', (backend) => {
  let intake: TestIntake;
  let hooks: ScriptedReceiver;
  const call = (method: 'GET' | 'POST', url: string, payload?: unknown) =>
    intake.app.inject({
      method,
      url,
      headers: payload === undefined ? auth : { ...auth, 'content-type': 'application/json' },
      ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }),
    });
  const createRule = async (appId: string, extra: Record<string, unknown>) => {
    const response = await call('POST', '/api/routing-rules', { app_id: appId, rule_name: 'r', destination_type: 'database', ...extra });
    expect(response.statusCode, response.body).toBe(201);
    return response.json() as Rule;
  };
  const ingest = async (appId: string, eventType: string, count: number) => {
    const events = Array.from({ length: count }, (_, i) => ({ event_type: eventType, payload: { i } }));
    const response = await call('POST', `/api/ingest/${appId}/batch`, { events });
    expect(response.statusCode, response.body).toBe(200);
    return (response.json().results as Array<{ event_id: string }>).map((r) => r.event_id);
  };

  beforeAll(async () => {
    // A rejecting receiver dead-letters each delivery at its first attempt; the breaker must not hold them back.
    hooks = await startScriptedReceiver(() => 400);
    intake = await startIntakeOn(backend, { WEBHOOK_ALLOWED_HOSTS: '127.0.0.1', ROUTING_BREAKER_THRESHOLD: '1000' });
    for (const app_id of ['shop', 'other'])
      expect((await call('POST', '/api/applications', { name: app_id, app_id })).statusCode).toBe(201);
  }, 60_000);
  afterAll(async () => {
    await intake.dispose();
    await hooks.close();
  });

  it("walks an application's rules by priority, then age, each once", async () => {
    const created: Rule[] = [];
    // Equal priorities and equal creation times put the later parts of the key to work.
    for (const priority of [2, 0, 1, 2, 0, 1, 2, 1]) {
      created.push(await createRule('shop', { priority, event_type_filter: 'never', destination_config: { table: 'paged_rules' } }));
    }
    await createRule('other', { event_type_filter: 'never', destination_config: { table: 'paged_rules' } });
    const expected = [...created]
      .sort((a, b) => b.priority - a.priority || a.created_at.localeCompare(b.created_at) || (a.rule_id < b.rule_id ? -1 : 1))
      .map((r) => r.rule_id);

    const { items, pages } = await everyPage<Rule>(intake, '/api/routing-rules/app/shop', 3);
    expect(items.map((r) => r.rule_id)).toEqual(expected);
    expect(pages).toBe(3);
    const all = (await call('GET', '/api/routing-rules/app/shop')).json();
    expect(all).toMatchObject({ next_cursor: null });
    expect(all.items).toHaveLength(8);
    await expectCursorRefused(intake, '/api/routing-rules/app/shop');
  });

  it("walks a rule's deliveries newest first, each once", async () => {
    const rule = await createRule('shop', { event_type_filter: 'order', destination_config: { table: 'paged_orders' } });
    const eventIds = await ingest('shop', 'order', 23);
    await intake.subscriptions.caughtUp(30_000);

    const { items, pages } = await everyPage<Delivery>(intake, `/api/routing/deliveries?rule_id=${rule.rule_id}`, 5);
    expect(pages).toBe(5);
    expect(items).toEqual([...items].sort(newestFirst));
    expect(new Set(items.map((d) => d.delivery_id)).size).toBe(23);
    expect(items.map((d) => d.event_id).sort()).toEqual([...eventIds].sort());
    const succeeded = await everyPage<Delivery>(intake, `/api/routing/deliveries?rule_id=${rule.rule_id}&status=succeeded`, 10);
    expect(succeeded.items).toEqual(items);
    await expectCursorRefused(intake, `/api/routing/deliveries?rule_id=${rule.rule_id}`);
  });

  it('walks the dead letters newest first, each once', async () => {
    const rule = await createRule('shop', {
      event_type_filter: 'refund',
      destination_type: 'webhook',
      destination_config: { url: hooks.url },
    });
    const eventIds = await ingest('shop', 'refund', 7);
    const deadUrl = `/api/routing/dead-letters?rule_id=${rule.rule_id}`;
    const deadline = Date.now() + 30_000;
    while ((await call('GET', `${deadUrl}&limit=1000`)).json().items.length < 7) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    const { items, pages } = await everyPage<Delivery>(intake, deadUrl, 3);
    expect(pages).toBe(3);
    expect(items).toEqual([...items].sort(newestFirst));
    expect(items.every((d) => d.status === 'dead_lettered')).toBe(true);
    expect(items.map((d) => d.event_id).sort()).toEqual([...eventIds].sort());
    await expectCursorRefused(intake, deadUrl);
  }, 40_000);
});
