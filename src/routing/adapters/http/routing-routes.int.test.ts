import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminCall, type TestIntake } from '../../../../test/support/embedded-intake.js';
import { backends, everyPage, expectCursorRefused, MALFORMED_CURSORS, startIntakeOn } from '../../../../test/support/paging.js';
import { startScriptedReceiver, type ScriptedReceiver } from '../../../../test/support/scripted-receiver.js';
import { MAX_PAGE_BYTES } from '../../../shared/pagination.js';

type Rule = { rule_id: string; priority: number; created_at: string };
type Delivery = { delivery_id: string; event_id: string; status: string; created_at: string };
type Destination = { rule_id: string };
type ReplayJob = { job_id: string; status: string; created_at: string };

/** Newest first, as the deliveries lists promise: by creation time, then by id, both descending. */
const newestFirst = (a: Delivery, b: Delivery) =>
  a.created_at === b.created_at ? (a.delivery_id < b.delivery_id ? 1 : -1) : a.created_at < b.created_at ? 1 : -1;
/** The replay jobs' order: by creation time, then by job id, both descending. */
const newestJobFirst = (a: ReplayJob, b: ReplayJob) =>
  a.created_at === b.created_at ? (a.job_id < b.job_id ? 1 : -1) : a.created_at < b.created_at ? 1 : -1;

describe.each(backends)('paged routing lists on %s', (backend) => {
  let intake: TestIntake;
  let hooks: ScriptedReceiver;
  const call = (method: 'GET' | 'POST', url: string, payload?: unknown) => adminCall(intake, method, url, payload);
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

  it('answers 404 for the rules of an application that does not exist, as for its keys (a typo read as no rules), and an empty list for one without rules', async () => {
    const typo = await call('GET', '/api/routing-rules/app/shpo');
    expect([typo.statusCode, typo.json().code]).toEqual([404, 'applications.not-found']);
    expect((await call('POST', '/api/applications', { name: 'ruleless', app_id: 'ruleless' })).statusCode).toBe(201);
    expect((await call('GET', '/api/routing-rules/app/ruleless')).json()).toEqual({ items: [], next_cursor: null });
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

  it('walks every destination by rule id, each once, the last page full and without a next cursor', async () => {
    const before = (await call('GET', '/api/routing/destinations?limit=1000')).json().items.length as number;
    // Tops the rules of the earlier tests up to a multiple of the page size, so the last page is exactly full.
    const toCreate = 8 + (4 - (before % 4));
    const created: string[] = [];
    for (let i = 0; i < toCreate; i++)
      created.push((await createRule('other', { event_type_filter: 'never', destination_config: { table: 'paged_rules' } })).rule_id);
    const all = (await call('GET', '/api/routing/destinations?limit=1000')).json();
    expect(all.next_cursor).toBeNull();
    const ids = (all.items as Destination[]).map((d) => d.rule_id);
    expect(ids.length % 4).toBe(0);
    expect(ids).toEqual(expect.arrayContaining(created));

    const exact = await everyPage<Destination>(intake, '/api/routing/destinations', 4);
    expect(exact.items.map((d) => d.rule_id)).toEqual(ids);
    expect(exact.pages).toBe(ids.length / 4);
    const ragged = await everyPage<Destination>(intake, '/api/routing/destinations', 5);
    expect(ragged.items.map((d) => d.rule_id)).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual([...ids].sort());
    // The key is the rule id alone: no parts to check, only that the cursor is one Intake encoded.
    await expectCursorRefused(intake, '/api/routing/destinations', MALFORMED_CURSORS);
  });

  it("walks a rule's replay jobs newest first, each once, the last page full and without a next cursor", async () => {
    const rule = await createRule('shop', { event_type_filter: 'never', destination_config: { table: 'paged_rules' } });
    const jobsUrl = `/api/routing-rules/${rule.rule_id}/replays`;
    const window = { from: new Date(Date.now() - 60_000).toISOString(), to: new Date().toISOString() };
    // One job runs per rule at a time: each is cancelled before the next starts.
    for (let i = 0; i < 9; i++) {
      const started = await call('POST', `/api/routing-rules/${rule.rule_id}/replay`, window);
      expect(started.statusCode, started.body).toBe(202);
      const jobId = (started.json() as ReplayJob).job_id;
      const cancelled = await call('POST', `${jobsUrl}/${jobId}/cancel`);
      expect(cancelled.statusCode, cancelled.body).toBe(200);
    }

    const exact = await everyPage<ReplayJob>(intake, jobsUrl, 3);
    expect(exact.pages).toBe(3);
    expect(exact.items).toEqual([...exact.items].sort(newestJobFirst));
    expect(new Set(exact.items.map((j) => j.job_id)).size).toBe(9);
    const ragged = await everyPage<ReplayJob>(intake, jobsUrl, 4);
    expect(ragged.pages).toBe(3);
    expect(ragged.items.map((j) => j.job_id)).toEqual(exact.items.map((j) => j.job_id));
    expect((await call('GET', jobsUrl)).json()).toMatchObject({ next_cursor: null });
    await expectCursorRefused(intake, jobsUrl);
  });

  it(`stops a page of rules before the one that would take it past ${MAX_PAGE_BYTES / (1024 * 1024)} MB, whatever the limit`, async () => {
    // Last: the destinations test above counts every rule.
    // Rules of about 900 KB (a request body holds 1 MB): six of them weigh more than a page may.
    expect((await call('POST', '/api/applications', { name: 'wide', app_id: 'wide' })).statusCode).toBe(201);
    const created: string[] = [];
    for (let i = 0; i < 6; i++) {
      const rule = await createRule('wide', {
        rule_name: `wide ${i}`,
        condition: { 'payload.sku': { $in: Array.from({ length: 9000 }, (_, k) => `${i}-${k}-${'s'.repeat(90)}`) } },
        event_type_filter: 'never',
        destination_config: { table: 'wide_rules' },
      });
      created.push(rule.rule_id);
    }
    const walk = async (url: string) => {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const response = await call('GET', `${url}?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        expect(response.statusCode).toBe(200);
        expect(response.body.length).toBeLessThan(MAX_PAGE_BYTES + 1024 * 1024);
        const page = response.json() as { items: Array<{ rule_id: string }>; next_cursor: string | null };
        seen.push(...page.items.map((rule) => rule.rule_id));
        cursor = page.next_cursor;
        pages++;
      } while (cursor);
      return { seen, pages };
    };
    const byApp = await walk('/api/routing-rules/app/wide');
    expect(byApp).toEqual({ seen: created, pages: 2 });
    // The destinations list pages over every rule by id, with their names.
    const destinations = await walk('/api/routing/destinations');
    expect(destinations.seen.filter((id) => created.includes(id)).sort()).toEqual([...created].sort());
    expect(destinations.pages).toBeGreaterThanOrEqual(2);
  });
});
