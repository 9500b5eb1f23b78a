import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  natsServerAvailable,
  startPrivateNatsServer,
  type PrivateNatsServer,
} from '../../src/shared/messaging/nats/private-nats-server.js';
import { INTAKE_CLI } from '../support/intake-cli.js';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';

const postgresUrl = process.env.TEST_POSTGRES_URL;
const runnable = Boolean(postgresUrl) && natsServerAvailable();
if (!runnable) console.warn('skipping the distributed replay test: it needs TEST_POSTGRES_URL and nats-server');

const TOKEN = `e2e-${randomBytes(12).toString('hex')}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(!runnable)('distributed mode: ROLE=<role> intake replay', () => {
  const prefix = `e2e_${randomBytes(4).toString('hex')}_`;
  const natsDir = mkdtempSync(join(tmpdir(), 'intake-nats-'));
  let nats: PrivateNatsServer;
  let hooks: WebhookReceiver;
  let db: pg.Client;
  let ingestion: ServerProcess;
  let routing: ServerProcess | undefined;
  let writeKey: Record<string, string>;

  const env = (role: string) => ({
    DATABASE_URL: postgresUrl ?? '',
    NATS_URL: nats.url,
    DB_SCHEMA_PREFIX: prefix,
    ADMIN_TOKEN: TOKEN,
    ROLE: role,
    LOG_LEVEL: 'info',
    WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
  });
  const serve = (role: string) => startServerProcess(env(role), ['serve'], 60_000);
  const replay = async (role: string): Promise<{ code: number | null; output: string }> => {
    const child = spawn(process.execPath, [...INTAKE_CLI, 'replay'], {
      cwd: fileURLToPath(new URL('../../', import.meta.url)),
      env: { ...process.env, ...env(role) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    return { code, output };
  };
  const post = (server: ServerProcess, path: string, body: unknown, headers: Record<string, string>) =>
    fetch(`${server.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
  const admin = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
  const order = (n: number) => post(ingestion, '/api/ingest/shop', { event_type: 'order_created', payload: { n, total: 99 } }, writeKey);
  const deliveries = async () =>
    Number(
      (await db.query<{ n: string }>(`SELECT count(*) AS n FROM "${prefix}routing".events WHERE type = 'DeliverySucceeded'`)).rows[0]?.n,
    );

  beforeAll(async () => {
    nats = await startPrivateNatsServer(natsDir);
    hooks = await startWebhookReceiver();
    db = new pg.Client({ connectionString: postgresUrl });
    await db.connect();
    [ingestion, routing] = await Promise.all([serve('ingestion'), serve('routing')]);
    expect((await post(ingestion, '/api/applications', { name: 'Shop', app_id: 'shop' }, admin)).status).toBe(201);
    const key = (await (await post(ingestion, '/api/applications/shop/keys', { name: 'server' }, admin)).json()) as { key: string };
    writeKey = { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' };
    // Routing learns of the application through its replica: the rule is refused until then.
    const rule = { app_id: 'shop', rule_name: 'orders', event_type_filter: 'order_created', destination_type: 'webhook' };
    for (let status = 0; status !== 201; await sleep(200)) {
      const created = await post(routing, '/api/routing-rules', { ...rule, destination_config: { url: hooks.url } }, admin);
      status = created.status;
    }
    // Ingestion evaluates the rules on the ingest path: it matches once its replica has the rule.
    for (let matched = 0; matched !== 1; await sleep(200)) {
      const body = (await (await order(0)).json()) as { data: { routing_summary: { rules_matched: number } } };
      matched = body.data.routing_summary.rules_matched;
    }
    await hooks.waitFor(1, 30_000);
  }, 120_000);

  afterAll(async () => {
    await Promise.all([ingestion, routing].map((p) => p?.kill('SIGKILL')));
    await nats?.stop();
    await hooks?.close();
    rmSync(natsDir, { recursive: true, force: true });
    for (const role of ['ingestion', 'routing', 'query']) await db?.query(`DROP SCHEMA IF EXISTS "${prefix}${role}" CASCADE`);
    await db?.end();
  }, 60_000);

  it('rebuilds the routing role without delivering: the webhooks it owes are sent by the role once it runs again', async () => {
    await routing?.kill('SIGTERM');
    routing = undefined;
    const before = hooks.received.length;
    const sentBefore = await deliveries();
    // Orders the stopped role has not seen yet: the stream holds them for its consumer.
    const ORDERS = 5;
    for (let n = 1; n <= ORDERS; n++) expect((await order(n)).status).toBe(201);

    // Routing keeps no view of its own: the query role's view is rebuilt beside it, which takes a while.
    const result = await replay('routing,query');
    expect(result.code, result.output).toBe(0);
    expect(result.output).toMatch(/replay finished: rebuilt .*query/);
    await sleep(1000);
    expect(hooks.received.length, 'the replay sent webhooks').toBe(before);
    expect(await deliveries()).toBe(sentBefore);

    // Nothing was lost: the role, started again, delivers each order once.
    routing = await serve('routing');
    await hooks.waitFor(before + ORDERS, 20_000);
    expect(hooks.received.length).toBe(before + ORDERS);
  }, 60_000);

  it('refuses to replay a role while it runs, and replays it once it was stopped, even by SIGKILL', async () => {
    routing ??= await serve('routing');
    const refused = await replay('routing');
    expect(refused.code, refused.output).toBe(1);
    expect(refused.output).toMatch(/ROLE=routing is running on this deployment/);

    await routing?.kill('SIGKILL');
    routing = undefined;
    const allowed = await replay('routing');
    expect(allowed.code, allowed.output).toBe(0);
    expect(allowed.output).toMatch(/nothing to replay: ROLE=routing keeps no views/);
  }, 60_000);
});
