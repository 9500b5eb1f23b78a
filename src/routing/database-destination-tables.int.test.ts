import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminCall, type TestIntake } from '../../test/support/embedded-intake.js';
import { MAX_RULES_PER_APPLICATION } from './application/manage-rules.js';
import { backends, startIntakeOn } from '../../test/support/paging.js';
import { startScriptedReceiver, type ScriptedReceiver } from '../../test/support/scripted-receiver.js';

type Delivery = { delivery_id: string; rule_id: string; event_id: string; status: string; attempts: number; last_error: string | null };

/** Database destinations whose table names differ only in letter case, over the HTTP API (finding F1 of the probe). */
describe.each(backends)('database destination tables in any letter case on %s', (backend) => {
  let intake: TestIntake;
  let hooks: ScriptedReceiver;
  const call = (method: 'GET' | 'POST', url: string, payload?: unknown) => adminCall(intake, method, url, payload);
  const createRule = async (app_id: string, destination: Record<string, unknown>) => {
    const response = await call('POST', '/api/routing-rules', { app_id, rule_name: 'r', ...destination });
    expect(response.statusCode, response.body).toBe(201);
    return (response.json() as { rule_id: string }).rule_id;
  };
  const ingest = async (appId: string) => {
    const response = await call('POST', `/api/ingest/${appId}`, { event_type: 't', payload: {} });
    expect(response.statusCode, response.body).toBe(201);
    return (response.json() as { data: { event_id: string } }).data.event_id;
  };
  const deliveriesOf = async (eventId: string) => {
    await intake.subscriptions.caughtUp(30_000);
    const response = await call('GET', `/api/routing/deliveries?event_id=${eventId}&limit=50`);
    expect(response.statusCode, response.body).toBe(200);
    return (response.json() as { items: Delivery[] }).items;
  };
  const parked = async () => {
    const response = await call('GET', '/api/admin/subscriptions');
    return (response.json() as { items: Array<{ name: string; parked: number }> }).items.filter((s) => s.parked > 0);
  };
  const settled = async (deliveryId: string, accept: (d: Delivery) => boolean) => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const delivery = (await call('GET', `/api/routing/deliveries/${deliveryId}`)).json() as Delivery;
      if (accept(delivery)) return delivery;
      if (Date.now() > deadline) throw new Error(`delivery ${deliveryId} stayed ${JSON.stringify(delivery)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const rowsIn = async (table: string) =>
    Number((await sql<{ n: number }>`SELECT count(*) AS n FROM ${sql.table(table)}`.execute(intake.db)).rows[0]?.n);

  beforeAll(async () => {
    hooks = await startScriptedReceiver(() => 200);
    intake = await startIntakeOn(backend, { WEBHOOK_ALLOWED_HOSTS: '127.0.0.1' });
    for (const app_id of ['ca', 'cb']) expect((await call('POST', '/api/applications', { name: app_id, app_id })).statusCode).toBe(201);
  }, 60_000);
  afterAll(async () => {
    await intake.dispose();
    await hooks.close();
  });

  it('writes rules of two applications naming CaseTbl and casetbl to one table, parks nothing, and schedules the webhook too', async () => {
    const upper = await createRule('ca', { destination_type: 'database', destination_config: { table: 'CaseTbl' } });
    const webhook = await createRule('ca', { destination_type: 'webhook', destination_config: { url: hooks.url } });
    const lower = await createRule('cb', { destination_type: 'database', destination_config: { table: 'casetbl' } });

    const first = await ingest('cb'); // creates the table, spelled casetbl
    const second = await ingest('ca');

    expect((await deliveriesOf(first)).map((d) => [d.rule_id, d.status])).toEqual([[lower, 'succeeded']]);
    const routed = await deliveriesOf(second);
    expect(Object.fromEntries(routed.map((d) => [d.rule_id, d.status === 'succeeded' || d.rule_id === webhook]))).toEqual({
      [upper]: true,
      [webhook]: true,
    });
    await hooks.waitFor((requests) => requests.some((r) => r.body.includes(second)));
    expect(await parked()).toEqual([]);
    expect(await rowsIn('casetbl')).toBe(2);
  });

  it('refuses on save a name that is one of its own tables in another letter case, or one of its indexes', async () => {
    for (const table of ['Routing_Rules', 'write_keys_app']) {
      const response = await call('POST', '/api/routing-rules', {
        app_id: 'ca',
        rule_name: 'r',
        destination_type: 'database',
        destination_config: { table },
      });
      expect(response.statusCode, table).toBe(400);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.json()).toMatchObject({ code: 'routing.invalid-destination' });
    }
  });

  it('dead-letters, with the reason, only the delivery to a table another has taken since its rule was saved', async () => {
    expect((await call('POST', '/api/applications', { name: 'cc', app_id: 'cc' })).statusCode).toBe(201);
    const taken = await createRule('cc', { destination_type: 'database', destination_config: { table: 'legacy_copy' } });
    const copy = await createRule('cc', { destination_type: 'database', destination_config: { table: 'Other_Copy' } });
    const webhook = await createRule('cc', { destination_type: 'webhook', destination_config: { url: hooks.url } });
    // Saved while the name was free; a table Intake does not own took it since, in another case.
    await sql`CREATE TABLE ${sql.table('Legacy_Copy')} (id text)`.execute(intake.db);

    const eventId = await ingest('cc');

    const routed = await deliveriesOf(eventId);
    const failed = routed.find((d) => d.rule_id === taken);
    expect(failed).toMatchObject({ status: 'dead_lettered', attempts: 1 });
    expect(failed?.last_error).toMatch(/^table legacy_copy could not be written: .*already exists/);
    // The application's other rules deliver the event as ever.
    expect(routed.find((d) => d.rule_id === copy)?.status).toBe('succeeded');
    expect(routed.map((d) => d.rule_id)).toContain(webhook);
    await hooks.waitFor((requests) => requests.some((r) => r.body.includes(eventId)));
    expect(await parked()).toEqual([]);

    // Sent again, the delivery fails again at once with the reason, instead of staying in flight.
    const deliveryId = failed?.delivery_id ?? '';
    expect((await call('POST', `/api/routing/deliveries/${deliveryId}/replay`)).statusCode).toBe(202);
    const again = await settled(deliveryId, (d) => d.status === 'dead_lettered' && d.attempts === 2);
    expect(again.last_error).toMatch(/could not be written/);

    // Once the name is free again, a replay writes the row.
    await sql`DROP TABLE ${sql.table('Legacy_Copy')}`.execute(intake.db);
    expect((await call('POST', `/api/routing/deliveries/${deliveryId}/replay`)).statusCode).toBe(202);
    await settled(deliveryId, (d) => d.status === 'succeeded');
    expect(await rowsIn('legacy_copy')).toBe(1);
  });

  it('replays a window into the table without a second row (unless given fresh ids), re-evaluating `properties.*` as at ingestion', async () => {
    expect((await call('POST', '/api/applications', { name: 'cf', app_id: 'cf' })).statusCode).toBe(201);
    const ruleId = await createRule('cf', {
      destination_type: 'database',
      destination_config: { table: 'replayed_copy' },
      condition: { 'properties.total': { $gt: 5 } },
    });
    const from = new Date().toISOString();
    const response = await call('POST', '/api/ingest/cf', { event_type: 't', payload: { properties: { total: 10 } } });
    expect(response.statusCode, response.body).toBe(201);
    await deliveriesOf((response.json() as { data: { event_id: string } }).data.event_id);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const to = new Date().toISOString();
    const replay = async (options: object) => {
      const started = await call('POST', `/api/routing-rules/${ruleId}/replay`, { from, to, ...options });
      expect(started.statusCode, started.body).toBe(202);
      const jobId = (started.json() as { job_id: string }).job_id;
      for (const deadline = Date.now() + 20_000; ;) {
        const job = (await call('GET', `/api/routing-rules/${ruleId}/replays/${jobId}`)).json() as { status: string };
        if (job.status === 'completed') return job;
        if (Date.now() > deadline) throw new Error(`replay stayed ${JSON.stringify(job)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    expect(await replay({ reevaluate: true })).toMatchObject({ scanned: 1, scheduled: 1 });
    await intake.subscriptions.caughtUp(30_000);
    expect(await rowsIn('replayed_copy')).toBe(1);
    await replay({ fresh_ids: true });
    await intake.subscriptions.caughtUp(30_000);
    expect(await rowsIn('replayed_copy')).toBe(2);
  });

  it(`holds an application to ${MAX_RULES_PER_APPLICATION} rules when many are created at once`, async () => {
    expect((await call('POST', '/api/applications', { name: 'cg', app_id: 'cg' })).statusCode).toBe(201);
    const rule = { app_id: 'cg', rule_name: 'r', destination_type: 'database', destination_config: { table: 'capped_copy' } };
    for (let i = 0; i < MAX_RULES_PER_APPLICATION - 5; i++) expect((await call('POST', '/api/routing-rules', rule)).statusCode).toBe(201);
    const racing = await Promise.all(Array.from({ length: 20 }, () => call('POST', '/api/routing-rules', rule)));
    expect(racing.filter((r) => r.statusCode === 201)).toHaveLength(5);
    expect(racing.filter((r) => r.statusCode === 409).map((r) => (r.json() as { code: string }).code)).toEqual(
      Array(15).fill('routing.too-many-rules'),
    );
  }, 120_000);

  it('makes a table dropped under it again, dead-letters only the rows of one altered, and holds up no other application', async () => {
    for (const app_id of ['cd', 'ce']) expect((await call('POST', '/api/applications', { name: app_id, app_id })).statusCode).toBe(201);
    const dropped = await createRule('cd', { destination_type: 'database', destination_config: { table: 'dropped_copy' } });
    await deliveriesOf(await ingest('cd'));
    await sql`DROP TABLE ${sql.table('dropped_copy')}`.execute(intake.db);
    const afterDrop = await ingest('cd');
    expect((await deliveriesOf(afterDrop)).find((d) => d.rule_id === dropped)).toMatchObject({ status: 'succeeded' });
    expect(await rowsIn('dropped_copy')).toBe(1);

    const altered = await createRule('ce', { destination_type: 'database', destination_config: { table: 'altered_copy' } });
    await deliveriesOf(await ingest('ce'));
    await sql`ALTER TABLE ${sql.table('altered_copy')} RENAME COLUMN body TO payload`.execute(intake.db);
    const afterAlter = await ingest('ce');
    const failed = (await deliveriesOf(afterAlter)).find((d) => d.rule_id === altered);
    expect(failed).toMatchObject({ status: 'dead_lettered' });
    expect(failed?.last_error).toMatch(/^table altered_copy could not be written: .*changed under Intake/);
    // Its one attempt is in the metrics as in the success ratio (the counter left it out).
    const scraped = (await call('GET', '/metrics')).body as string;
    expect(scraped).toContain(`intake_delivery_attempts_total{rule_id="${altered}",destination_type="database",outcome="rejected"} 1`);
    // Every other item goes through the pipeline as ever.
    const other = await ingest('ca');
    await intake.subscriptions.caughtUp(30_000);
    expect(((await call('GET', `/query/${other}`)).json() as { status: string }).status).toBe('processed');
    expect(await parked()).toEqual([]);
  });
});
