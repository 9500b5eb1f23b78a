import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';

const dir = mkdtempSync(join(tmpdir(), 'intake-delivery-metrics-'));
let server: ServerProcess | undefined;
afterAll(async () => {
  await server?.kill();
  rmSync(dir, { recursive: true, force: true });
});

describe('delivery metrics of a served Intake', () => {
  it('count a database destination’s rows, written as deliveries are scheduled, as delivered attempts with a duration', async () => {
    server = await startServerProcess({ DATABASE_URL: `sqlite:${join(dir, 'intake.db')}`, ADMIN_TOKEN: 'metrics-admin' });
    const url = server.url;
    const call = (method: string, path: string, body?: unknown) =>
      fetch(`${url}${path}`, {
        method,
        headers: { authorization: 'Bearer metrics-admin', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    expect((await call('POST', '/api/applications', { app_id: 'shop', name: 'Shop' })).status).toBe(201);
    const rule = (await (
      await call('POST', '/api/routing-rules', {
        app_id: 'shop',
        rule_name: 'orders table',
        destination_type: 'database',
        destination_config: { table: 'metrics_orders' },
      })
    ).json()) as { rule_id: string };
    for (let n = 1; n <= 3; n++) expect((await call('POST', '/api/ingest/shop', { event_type: 'order', payload: { n } })).status).toBe(201);
    let scraped = '';
    for (const deadline = Date.now() + 20_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
      scraped = await (await call('GET', '/metrics')).text();
      if (scraped.includes(`intake_deliveries_total{destination_type="database",outcome="succeeded"} 3`)) break;
    }
    expect(scraped).toContain(
      `intake_delivery_attempts_total{rule_id="${rule.rule_id}",destination_type="database",outcome="delivered"} 3`,
    );
    expect(scraped).toContain(`intake_delivery_duration_seconds_count{destination_type="database"} 3`);
  }, 60_000);
});
