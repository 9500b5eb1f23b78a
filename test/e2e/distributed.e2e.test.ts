import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  natsServerAvailable,
  startPrivateNatsServer,
  type PrivateNatsServer,
} from '../../src/shared/messaging/nats/private-nats-server.js';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';

const postgresUrl = process.env.TEST_POSTGRES_URL;
const runnable = Boolean(postgresUrl) && natsServerAvailable();
if (!runnable) console.warn('skipping the distributed end-to-end test: it needs TEST_POSTGRES_URL and nats-server');

const TOKEN = 'distributed-token';
const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
const ITEMS_BEFORE_KILL = 1200;
const ITEMS_DURING_OUTAGE = 300;
const ITEMS_AFTER = 500;

describe.skipIf(!runnable)('distributed mode: ingestion, validation, processing and query as separate processes', () => {
  const prefix = `e2e_${randomBytes(4).toString('hex')}_`;
  const natsDir = mkdtempSync(join(tmpdir(), 'intake-nats-'));
  const processes = new Map<string, ServerProcess>();
  let nats: PrivateNatsServer;

  const env = () => ({
    DATABASE_URL: postgresUrl ?? '',
    NATS_URL: nats.url,
    DB_SCHEMA_PREFIX: prefix,
    ADMIN_TOKEN: TOKEN,
    LOG_LEVEL: 'warn',
  });
  const startRole = async (role: string) => {
    const server = await startServerProcess({ ...env(), ROLE: role, LOG_LEVEL: 'info' });
    processes.set(role, server);
    return server;
  };
  const url = (role: string) => processes.get(role)?.url ?? '';

  beforeAll(async () => {
    nats = await startPrivateNatsServer(natsDir);
    await Promise.all(['ingestion', 'validation', 'processing', 'query'].map(startRole));
  }, 120_000);

  afterAll(async () => {
    await Promise.all([...processes.values()].map((p) => p.kill('SIGKILL')));
    await nats?.stop();
    rmSync(natsDir, { recursive: true, force: true });
    const client = new pg.Client({ connectionString: postgresUrl });
    await client.connect();
    for (const role of ['ingestion', 'validation', 'processing', 'query'])
      await client.query(`DROP SCHEMA IF EXISTS "${prefix}${role}" CASCADE`);
    await client.end();
  }, 60_000);

  /** Sends `count` items with `concurrency` requests in flight; answers the ids that were acknowledged. */
  async function ingest(count: number, concurrency = 32, onProgress?: (done: number) => void): Promise<string[]> {
    const ids: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < count) {
          const i = next++;
          const response = await fetch(`${url('ingestion')}/ingest`, {
            method: 'POST',
            headers,
            body: JSON.stringify({ partner_id: `p${i % 7}`, event_type: 'order', payload: { n: i, email: ` USER${i}@Example.com ` } }),
          });
          expect(response.status).toBe(201);
          ids.push(((await response.json()) as { id: string }).id);
          onProgress?.(ids.length);
        }
      }),
    );
    return ids;
  }

  async function processedCount(): Promise<number> {
    let count = 0;
    let cursor: string | null = null;
    do {
      const response = await fetch(`${url('query')}/query/all?status=processed&limit=1000${cursor ? `&cursor=${cursor}` : ''}`, {
        headers,
      });
      const page = (await response.json()) as { items: unknown[]; next_cursor: string | null };
      count += page.items.length;
      cursor = page.next_cursor;
    } while (cursor);
    return count;
  }

  async function untilProcessed(expected: number, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const count = await processedCount();
      if (count === expected) return;
      if (Date.now() > deadline) throw new Error(`only ${count} of ${expected} items reached "processed"`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  it('takes thousands of items to "processed" in the query service, exactly once, through a SIGKILL and a broker outage', async () => {
    // 1. Concurrent ingestion; the processing process is killed with SIGKILL half-way and restarted.
    let killed: Promise<unknown> | undefined;
    const first = await ingest(ITEMS_BEFORE_KILL, 32, (done) => {
      if (done === ITEMS_BEFORE_KILL / 2 && !killed) killed = processes.get('processing')?.kill('SIGKILL');
    });
    await killed;
    await startRole('processing');

    // 2. The broker goes down while items keep coming: ingestion keeps accepting them.
    await nats.stop();
    const duringOutage = await ingest(ITEMS_DURING_OUTAGE, 8);
    const ready = (await (await fetch(`${url('ingestion')}/health/ready`)).json()) as { checks: Record<string, { status: string }> };
    expect(ready.checks['database:ingestion']?.status).toBe('ok');
    await nats.restart();
    const after = await ingest(ITEMS_AFTER, 16);

    const all = [...first, ...duringOutage, ...after];
    expect(new Set(all).size).toBe(ITEMS_BEFORE_KILL + ITEMS_DURING_OUTAGE + ITEMS_AFTER);
    await untilProcessed(all.length);

    // 3. Exactly-once effects: one verdict and one outcome per item, in each service's own store.
    const client = new pg.Client({ connectionString: postgresUrl });
    await client.connect();
    try {
      const count = async (sql: string) => Number((await client.query<{ n: string }>(sql)).rows[0]?.n);
      expect(await count(`SELECT count(*) AS n FROM "${prefix}validation".events WHERE type IN ('DataValidated', 'DataInvalid')`)).toBe(
        all.length,
      );
      expect(
        await count(`SELECT count(*) AS n FROM "${prefix}processing".events WHERE type IN ('DataProcessed', 'DataProcessingFailed')`),
      ).toBe(all.length);
      expect(await count(`SELECT count(DISTINCT stream_id) AS n FROM "${prefix}processing".events`)).toBe(all.length);
      expect(await count(`SELECT count(*) AS n FROM "${prefix}query".query_items WHERE status = 'processed'`)).toBe(all.length);
    } finally {
      await client.end();
    }

    // 4. One item seen whole through the query service: its history gathers the events of three services.
    const item = (await (await fetch(`${url('query')}/query/${duringOutage[0]}`, { headers })).json()) as {
      status: string;
      processing: { result: { email: string } };
      history: Array<{ type: string }>;
    };
    expect(item.status).toBe('processed');
    expect(item.processing.result.email).toMatch(/^user\d+@example\.com$/);
    expect(item.history.map((e) => e.type)).toEqual(['DataReceived', 'DataIngested', 'DataValidated', 'DataProcessed']);
  }, 300_000);
});
