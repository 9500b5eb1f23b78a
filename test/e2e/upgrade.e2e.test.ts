import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';

/**
 * A database the first release (a144d97) wrote, filled through its API by
 * test/fixtures/release-a144d97/fill.sh: the current build must open it, migrate it in place and keep
 * serving everything in it, without a replay by hand.
 */
const fixture = new URL('../fixtures/release-a144d97/', import.meta.url);
/** The fixture's own write key for `shop` (a throwaway database): it was issued by the old release. */
const RELEASE_WRITE_KEY = 'wk_7e91a3c63dfdb4dd_nd9R_1Pc_vsT17iTmk4kvWTUFpyBNvMQjcmEooWih7s';
const admin = { authorization: 'Bearer release-admin-token', 'content-type': 'application/json' };

const dir = mkdtempSync(join(tmpdir(), 'intake-upgrade-'));
const env = { DATABASE_URL: `sqlite:${join(dir, 'intake.db')}`, ADMIN_TOKEN: 'release-admin-token' };
let server: ServerProcess;

const get = async <T>(path: string): Promise<T> => {
  const response = await fetch(`${server.url}${path}`, { headers: admin });
  expect(response.status, `GET ${path}`).toBe(200);
  return (await response.json()) as T;
};
const post = (path: string, body: unknown, headers: Record<string, string> = admin) =>
  fetch(`${server.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });

type Page<T> = { items: T[] };
type PartnerItem = { id: string; event_type: string; payload: Record<string, unknown> };
type QueryItem = { status: string; processing: { result: Record<string, unknown> } | null; validation: { errors: unknown[] } };

beforeAll(async () => {
  writeFileSync(join(dir, 'intake.db'), gunzipSync(readFileSync(new URL('intake.db.gz', fixture))));
  server = await startServerProcess(env);
}, 120_000);

afterAll(async () => {
  await server?.kill();
  rmSync(dir, { recursive: true, force: true });
});

describe('upgrading a database of the first release', () => {
  it('is ready at once: every subscriber, the new ones too, has read the old log', async () => {
    await vi.waitFor(
      async () => {
        const ready = await fetch(`${server.url}/health/ready`);
        expect(ready.status).toBe(200);
        const body = (await ready.json()) as { checks: Record<string, { detail?: string }> };
        // Profiles and item-status came after the release: they start from the beginning of the log.
        expect(body.checks['subscriber:profiles']?.detail).toMatch(/position [1-9]\d*, lag 0/);
        expect(body.checks['subscriber:item-status']?.detail).toMatch(/position [1-9]\d*, lag 0/);
      },
      { timeout: 30_000, interval: 200 },
    );
  });

  it('keeps the partner items, their processing results and their validation verdicts', async () => {
    const { items } = await get<Page<PartnerItem>>('/ingest/partner/partner123?limit=100');
    expect(items.map((item) => item.event_type).sort()).toEqual(['order_created', 'signup', 'signup', 'signup']);
    const signup = items.find((item) => item.payload.email === ' Ada1@Example.COM ');
    const invalid = items.find((item) => item.event_type === 'order_created');
    expect((await get<QueryItem>(`/query/${signup?.id}`)).processing?.result).toEqual({ email: 'ada1@example.com' });
    const judged = await get<QueryItem>(`/query/${invalid?.id}`);
    expect(judged.status).toBe('invalid');
    expect(judged.validation.errors).not.toHaveLength(0);
  });

  it("takes the release's write key, and routes by the release's rule into the release's table", async () => {
    const before = await get<Page<{ event_id: string }>>('/api/routing/deliveries?limit=100');
    const sent = await post(
      '/api/ingest/shop',
      { event_type: 'order_created', payload: { total: 500 } },
      { authorization: `Bearer ${RELEASE_WRITE_KEY}`, 'content-type': 'application/json' },
    );
    expect(sent.status).toBe(201);
    const { data } = (await sent.json()) as { data: { event_id: string; routing_summary: { rules_matched: number } } };
    expect(data.routing_summary.rules_matched).toBe(1);
    expect(before.items.map((d) => d.event_id)).not.toContain(data.event_id);
    await vi.waitFor(
      async () => {
        const deliveries = await get<Page<{ event_id: string; status: string }>>('/api/routing/deliveries?limit=100');
        expect(deliveries.items.find((d) => d.event_id === data.event_id)?.status).toBe('succeeded');
      },
      { timeout: 15_000, interval: 100 },
    );
  });

  it("judges new items by the release's schema and counts them on top of the release's statistics", async () => {
    const item = await post('/ingest', { partner_id: 'partner123', event_type: 'order_created', payload: { total: 'many' } });
    const { id } = (await item.json()) as { id: string };
    await vi.waitFor(async () => expect((await get<QueryItem>(`/query/${id}`)).status).toBe('invalid'), { timeout: 15_000, interval: 100 });
    await vi.waitFor(
      async () => {
        const { buckets } = await get<{ buckets: Array<{ event_type: string; total_events: number }> }>('/api/statistics/shop');
        // Three orders the release took, and the one of the test before.
        expect(buckets.filter((b) => b.event_type === 'order_created').reduce((sum, b) => sum + b.total_events, 0)).toBe(4);
      },
      { timeout: 15_000, interval: 100 },
    );
  });

  it("answers the release's tracking events as attribution", async () => {
    const campaign = await get<{ interactions: { click: number }; unique_visitors: number }>('/api/v1/attribution/campaigns/spring');
    expect(campaign).toMatchObject({ interactions: { click: 2 }, unique_visitors: 2 });
    const visitor = await get<{ first_touch: { campaign_id: string } }>('/api/v1/attribution/visitors/v-1');
    expect(visitor.first_touch.campaign_id).toBe('spring');
  });

  it('starts again on the migrated database and serves what it holds', async () => {
    await server.kill();
    server = await startServerProcess(env);
    const ready = await fetch(`${server.url}/health/ready`);
    expect(ready.status).toBe(200);
    const { items } = await get<Page<PartnerItem>>('/ingest/partner/partner123?limit=100');
    expect(items).toHaveLength(5);
  });
});
