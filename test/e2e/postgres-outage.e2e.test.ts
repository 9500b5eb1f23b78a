import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import {
  natsServerAvailable,
  startPrivateNatsServer,
  type PrivateNatsServer,
} from '../../src/shared/messaging/nats/private-nats-server.js';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

const postgresUrl = process.env.TEST_POSTGRES_URL;
const runnable = Boolean(postgresUrl) && natsServerAvailable();
if (!runnable) console.warn('skipping the PostgreSQL outage test: it needs TEST_POSTGRES_URL and nats-server');

const headers = { authorization: 'Bearer outage-token', 'content-type': 'application/json' };

describe.skipIf(!runnable)('a role whose PostgreSQL goes away', () => {
  const schemaPrefix = `outage_${randomBytes(4).toString('hex')}_`;
  const natsDir = mkdtempSync(join(tmpdir(), 'intake-nats-'));
  let nats: PrivateNatsServer | undefined;
  let proxy: TcpProxy | undefined;
  let server: ServerProcess | undefined;

  afterAll(async () => {
    await server?.kill('SIGKILL');
    await proxy?.close();
    await nats?.stop();
    rmSync(natsDir, { recursive: true, force: true });
    const client = new pg.Client({ connectionString: postgresUrl });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schemaPrefix}ingestion" CASCADE`);
    await client.end();
  });

  it('answers 503 at once, says why in readiness, and recovers on its own when it is back', async () => {
    const target = new URL(postgresUrl ?? '');
    proxy = await startTcpProxy(Number(target.port || 5432), target.hostname);
    nats = await startPrivateNatsServer(natsDir);
    target.port = String(proxy.port);
    server = await startServerProcess({
      ROLE: 'ingestion',
      DATABASE_URL: target.toString(),
      NATS_URL: nats.url,
      DB_SCHEMA_PREFIX: schemaPrefix,
      ADMIN_TOKEN: 'outage-token',
    });
    const post = () => fetch(`${server?.url}/ingest`, { method: 'POST', headers, body: JSON.stringify({ partner_id: 'p', payload: {} }) });

    expect((await post()).status).toBe(201);

    await proxy.cut();
    const started = Date.now();
    const refused = await post();
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(((await refused.json()) as { code: string }).code).toBe('service.dependency-unavailable');
    expect(Date.now() - started).toBeLessThan(5000);
    const ready = await fetch(`${server.url}/health/ready`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { checks: Record<string, { status: string }> }).checks['database:ingestion']?.status).toBe('down');

    await proxy.restore();
    let recovered = 0;
    for (let attempt = 0; attempt < 50 && recovered !== 201; attempt++) {
      recovered = (await post()).status;
      if (recovered !== 201) await new Promise((r) => setTimeout(r, 200));
    }
    expect(recovered).toBe(201);
    expect((await fetch(`${server.url}/health/ready`)).status).toBe(200);
  }, 60_000);
});
