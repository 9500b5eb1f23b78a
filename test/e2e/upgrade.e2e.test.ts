import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';

/**
 * Databases older builds wrote, each filled through its API by test/fixtures/fill-through-api.sh: the
 * current build must open one, migrate it in place and keep serving everything in it, with no replay
 * by hand.
 */
interface OldDatabase {
  readonly name: string;
  /** The write key for `shop` the old build issued (a throwaway database's). */
  readonly writeKey: string;
  /** Puts the old database in place; answers the environment that opens it, and how to remove it. */
  install(): Promise<{ env: Record<string, string>; remove(): Promise<void> }>;
}

const fixtures = new URL('../fixtures/', import.meta.url);
const postgresUrl = process.env.TEST_POSTGRES_URL;

/** The first release (a144d97), on SQLite: the only database it could run alone on. */
const firstRelease: OldDatabase = {
  name: 'a SQLite database of the first release',
  writeKey: 'wk_7e91a3c63dfdb4dd_nd9R_1Pc_vsT17iTmk4kvWTUFpyBNvMQjcmEooWih7s',
  async install() {
    const dir = mkdtempSync(join(tmpdir(), 'intake-upgrade-'));
    writeFileSync(join(dir, 'intake.db'), gunzipSync(readFileSync(new URL('release-a144d97/intake.db.gz', fixtures))));
    return { env: { DATABASE_URL: `sqlite:${join(dir, 'intake.db')}` }, remove: async () => rmSync(dir, { recursive: true, force: true }) };
  },
};

/** The old build's generated `data/secret-key`. */
const POSTGRES_FIXTURE_SECRET_KEY = '226db63e568ccfe7255cc8a798d9e47f4ebe49adc78d4730b76250e2b062e3ff';

/** One process on PostgreSQL as d277157 (2026-12-02) wrote it: its schema, dumped as plain SQL by pg_dump. */
const firstOnPostgres: OldDatabase = {
  name: 'a PostgreSQL schema of the first single process on PostgreSQL',
  writeKey: 'wk_b79be9519f9dd392_cS_z8JiE5j86D1sLcWElTEE0Vezpg6a9J5igUq2PucA',
  async install() {
    const prefix = `upgrade_${randomBytes(4).toString('hex')}_`;
    const dump = gunzipSync(readFileSync(new URL('postgres-d277157/intake-schema.sql.gz', fixtures))).toString('utf8');
    // psql's own commands (`\restrict`) are not SQL; the dump's schema becomes this test's own.
    const script = dump
      .split('\n')
      .filter((line) => !line.startsWith('\\'))
      .join('\n')
      .replaceAll('upgrade_fixture_intake', `${prefix}intake`);
    const run = async (sql: string) => {
      const client = new pg.Client({ connectionString: postgresUrl });
      await client.connect();
      try {
        await client.query(sql);
      } finally {
        await client.end();
      }
    };
    await run(script);
    // The data directory the old build left: the key it generated there seals the database's secrets.
    const dir = mkdtempSync(join(tmpdir(), 'intake-upgrade-'));
    writeFileSync(join(dir, 'secret-key'), `${POSTGRES_FIXTURE_SECRET_KEY}\n`, { mode: 0o600 });
    return {
      env: { DATABASE_URL: postgresUrl ?? '', DB_SCHEMA_PREFIX: prefix, DATA_DIR: dir },
      async remove() {
        await run(`DROP SCHEMA IF EXISTS "${prefix}intake" CASCADE`);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

if (!postgresUrl) console.warn('skipping the PostgreSQL upgrade test: it needs TEST_POSTGRES_URL');

type Page<T> = { items: T[] };
type PartnerItem = { id: string; event_type: string; payload: Record<string, unknown> };
type QueryItem = { status: string; processing: { result: Record<string, unknown> } | null; validation: { errors: unknown[] } };
const admin = { authorization: 'Bearer release-admin-token', 'content-type': 'application/json' };

describe.each([
  { old: firstRelease, runnable: true },
  { old: firstOnPostgres, runnable: Boolean(postgresUrl) },
])('upgrading $old.name', ({ old, runnable }) => {
  let server: ServerProcess;
  let env: Record<string, string>;
  let remove: (() => Promise<void>) | undefined;

  const get = async <T>(path: string): Promise<T> => {
    const response = await fetch(`${server.url}${path}`, { headers: admin });
    expect(response.status, `GET ${path}`).toBe(200);
    return (await response.json()) as T;
  };
  const post = (path: string, body: unknown, headers: Record<string, string> = admin) =>
    fetch(`${server.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });

  beforeAll(async () => {
    if (!runnable) return;
    const installed = await old.install();
    remove = installed.remove;
    env = { ...installed.env, ADMIN_TOKEN: 'release-admin-token' };
    server = await startServerProcess(env);
  }, 120_000);

  afterAll(async () => {
    await server?.kill();
    await remove?.();
  });

  it.skipIf(!runnable)('is ready at once: every subscriber, the new ones too, has read the old log', async () => {
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

  it.skipIf(!runnable)('keeps the partner items, their processing results and their validation verdicts', async () => {
    const { items } = await get<Page<PartnerItem>>('/ingest/partner/partner123?limit=100');
    expect(items.map((item) => item.event_type).sort()).toEqual(['order_created', 'signup', 'signup', 'signup']);
    const signup = items.find((item) => item.payload.email === ' Ada1@Example.COM ');
    const invalid = items.find((item) => item.event_type === 'order_created');
    expect((await get<QueryItem>(`/query/${signup?.id}`)).processing?.result).toEqual({ email: 'ada1@example.com' });
    const judged = await get<QueryItem>(`/query/${invalid?.id}`);
    expect(judged.status).toBe('invalid');
    expect(judged.validation.errors).not.toHaveLength(0);
  });

  it.skipIf(!runnable)('takes the old write key, and routes by the old rule into the old table', async () => {
    const before = await get<Page<{ event_id: string }>>('/api/routing/deliveries?limit=100');
    const sent = await post(
      '/api/ingest/shop',
      { event_type: 'order_created', payload: { total: 500 } },
      { authorization: `Bearer ${old.writeKey}`, 'content-type': 'application/json' },
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

  it.skipIf(!runnable)('judges new items by the old schema and counts them on top of the old statistics', async () => {
    const item = await post('/ingest', { partner_id: 'partner123', event_type: 'order_created', payload: { total: 'many' } });
    const { id } = (await item.json()) as { id: string };
    await vi.waitFor(async () => expect((await get<QueryItem>(`/query/${id}`)).status).toBe('invalid'), { timeout: 15_000, interval: 100 });
    // The old items keep their order in the lists (numbered by id when the lists came to follow the
    // order items are written), and the new one comes after them.
    for (const list of ['/ingest/partner/partner123?limit=100', '/query/partner/partner123?limit=100']) {
      const ids = (await get<Page<{ id: string }>>(list)).items.map((listed) => listed.id);
      expect(ids.at(-1), list).toBe(id);
      expect(ids.slice(0, -1), list).toEqual([...ids.slice(0, -1)].sort());
    }
    await vi.waitFor(
      async () => {
        const { buckets } = await get<{ buckets: Array<{ event_type: string; total_events: number }> }>('/api/statistics/shop');
        // Three orders the old build took, and the one of the test before.
        expect(buckets.filter((b) => b.event_type === 'order_created').reduce((sum, b) => sum + b.total_events, 0)).toBe(4);
        // The dashboard reads sums kept beside the buckets, which the migration filled from the old ones.
        const dashboard = await get<{
          totals: { total_events: number };
          by_event_type: Array<{ event_type: string; total_events: number }>;
        }>('/api/statistics/dashboard/shop');
        expect(dashboard.by_event_type.find((type) => type.event_type === 'order_created')?.total_events).toBe(4);
        expect(dashboard.totals.total_events).toBe(buckets.reduce((sum, b) => sum + b.total_events, 0));
      },
      { timeout: 15_000, interval: 100 },
    );
  });

  it.skipIf(!runnable)('answers the old tracking events as attribution', async () => {
    const campaign = await get<{ interactions: { click: number }; unique_visitors: number }>('/api/v1/attribution/campaigns/spring');
    expect(campaign).toMatchObject({ interactions: { click: 2 }, unique_visitors: 2 });
    const visitor = await get<{ first_touch: { campaign_id: string } }>('/api/v1/attribution/visitors/v-1');
    expect(visitor.first_touch.campaign_id).toBe('spring');
  });

  it.skipIf(!runnable)('starts again on the migrated database and serves what it holds', async () => {
    await server.kill();
    server = await startServerProcess(env);
    // Ready once its subscribers have started again; nothing is left to read.
    await vi.waitFor(
      async () => {
        const ready = await fetch(`${server.url}/health/ready`);
        expect(ready.status, await ready.text()).toBe(200);
      },
      { timeout: 30_000, interval: 100 },
    );
    const { items } = await get<Page<PartnerItem>>('/ingest/partner/partner123?limit=100');
    expect(items).toHaveLength(5);
  });
});
