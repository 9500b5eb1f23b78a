import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Condition } from '../../src/routing/domain/condition.js';
import { ruleStreamId, type RoutingRuleCreated, type RoutingRuleUpdated } from '../../src/routing/domain/routing-rule.js';
import { ADMIN_TOKEN, auth, startTestIntake, type TestIntake } from '../support/embedded-intake.js';
import { INTAKE_CLI } from '../support/intake-cli.js';

// Rules an older release saved, with conditions today's limits refuse when a rule is saved.
const REFUSED = {
  backreference: { 'payload.name': { $regex: '(a)\\1' } },
  negated: { 'payload.name': { $not: { $regex: '(a)\\1' } } },
  branches: { $or: [...Array.from({ length: 150 }, (_, i) => ({ [`payload.f${i}`]: 1 })), { 'payload.x': { $exists: true } }] },
} as const;

const logged: Array<Record<string, unknown>> = [];
let intake: TestIntake;
let base: string;
beforeAll(async () => {
  const logger = pino({ level: 'warn' }, { write: (line: string) => logged.push(JSON.parse(line) as Record<string, unknown>) });
  // Replays slow enough that a job is still running when its rule changes.
  intake = await startTestIntake({ ROUTING_REPLAY_RATE: '2' }, { logger });
  base = await intake.app.listen({ port: 0, host: '127.0.0.1' });
  expect((await send('POST', '/api/applications', { name: 'Shop', app_id: 'shop' })).status).toBe(201);
});
afterAll(() => intake.dispose());

async function send<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, json: (await response.json()) as T };
}

/** Stores a rule as a release before today's limits did: its event, which the rules projection keeps. */
async function storedEarlier(name: string, condition: Condition): Promise<string> {
  const ruleId = `rule-${name}`;
  const created: RoutingRuleCreated = {
    type: 'RoutingRuleCreated',
    data: {
      rule_id: ruleId,
      app_id: 'shop',
      rule_name: name,
      event_type_filter: null,
      condition,
      destination_type: 'database',
      destination_config: { table: `t_${name}` },
      priority: 0,
      is_active: true,
      ordering_key: null,
      created_at: new Date().toISOString(),
    },
  };
  await intake.store.append({ streamId: ruleStreamId(ruleId), events: [created], expectedVersion: 'no_stream' });
  return ruleId;
}

const ingest = async (payload: object) =>
  (await send<{ data: { routing_summary: Record<string, number> } }>('POST', '/api/ingest/shop', { event_type: 'order', payload })).json
    .data.routing_summary;

it('shows a stored rule that today’s limits refuse, evaluates it no more, says so once, and lets PUT fix it', async () => {
  const ids = {
    backreference: await storedEarlier('backreference', REFUSED.backreference),
    negated: await storedEarlier('negated', REFUSED.negated),
    branches: await storedEarlier('branches', REFUSED.branches),
    runs: await storedEarlier('runs', { 'payload.x': { $exists: true } }),
  };
  for (const condition of Object.values(REFUSED)) {
    const saved = await send('POST', '/api/routing-rules', {
      app_id: 'shop',
      rule_name: 'today',
      condition,
      destination_type: 'database',
      destination_config: { table: 't_today' },
    });
    expect([saved.status, saved.json.code]).toEqual([400, 'routing.invalid-condition']);
  }

  // "aa" is what the backreference would match, so its negation would not: neither rule may route it.
  for (const name of ['aa', 'bb', 'cc'])
    expect(await ingest({ x: 1, name })).toEqual({ rules_evaluated: 1, rules_matched: 1, rules_executed: 1 });

  const rule = async (ruleId: string) => (await send(`GET`, `/api/routing-rules/${ruleId}`)).json;
  expect(await rule(ids.backreference)).toMatchObject({
    is_active: true,
    condition_error: expect.stringMatching(/^condition\.payload\.name\.\$regex: unsupported regular expression/),
  });
  expect((await rule(ids.negated)).condition_error).toMatch(/^condition\.payload\.name\.\$not\.\$regex: unsupported/);
  expect((await rule(ids.branches)).condition_error).toBe('condition: makes 151 comparisons, more than 100 (use $in for a list of values)');
  expect((await rule(ids.runs)).condition_error).toBeNull();
  const listed = (await send<{ items: Array<{ rule_id: string; condition_error: string | null }> }>('GET', '/api/routing-rules/app/shop'))
    .json.items;
  expect(Object.fromEntries(listed.map((r) => [r.rule_id, r.condition_error !== null]))).toEqual({
    [ids.backreference]: true,
    [ids.negated]: true,
    [ids.branches]: true,
    [ids.runs]: false,
  });
  await intake.subscriptions.caughtUp();
  const destinations = (await send<{ items: Array<Record<string, unknown>> }>('GET', '/api/routing/destinations')).json.items;
  expect(destinations.find((d) => d.rule_id === ids.negated)).toMatchObject({
    is_active: true,
    condition_error: expect.stringMatching(/unsupported regular expression/),
    attempts: 0,
  });
  expect(destinations.find((d) => d.rule_id === ids.runs)).toMatchObject({ condition_error: null, attempts: 3 });

  // Re-evaluating a window with a condition that cannot run is refused; a plain replay is not.
  const window = { from: new Date(Date.now() - 60_000).toISOString(), to: new Date().toISOString() };
  const reevaluate = await send('POST', `/api/routing-rules/${ids.negated}/replay`, { ...window, reevaluate: true });
  expect([reevaluate.status, reevaluate.json.code]).toEqual([400, 'routing.condition-unevaluable']);

  // Replaced with a condition that runs: shown as such, and evaluated from the next event on.
  const fixed = await send('PUT', `/api/routing-rules/${ids.backreference}`, {
    app_id: 'shop',
    rule_name: 'backreference',
    condition: { 'payload.name': { $regex: '^(a)a' } },
    destination_type: 'database',
    destination_config: { table: 't_backreference' },
  });
  expect([fixed.status, fixed.json.condition_error]).toEqual([200, null]);
  expect((await rule(ids.backreference)).condition_error).toBeNull();
  expect(await ingest({ x: 1, name: 'aa' })).toEqual({ rules_evaluated: 2, rules_matched: 2, rules_executed: 2 });

  // Told once per rule in the log, though its application's rules were compiled again after the PUT.
  const told = logged.filter((line) => String(line.msg).includes('condition cannot run'));
  expect(told.map((line) => line.rule_id).sort()).toEqual([ids.backreference, ids.branches, ids.negated].sort());
  expect(told[0]).toMatchObject({ app_id: 'shop', condition_error: expect.any(String) });
});

it('fails a re-evaluating replay whose rule comes to hold a condition that cannot run, saying why', async () => {
  const from = new Date(Date.now() - 1000).toISOString();
  const fields = {
    app_id: 'shop',
    rule_name: 'window',
    event_type_filter: 'window',
    condition: { 'payload.n': { $gte: 0 } },
    destination_type: 'database' as const,
    destination_config: { table: 't_window' },
    priority: 0,
    is_active: true,
    ordering_key: null,
  };
  const created = await send<{ rule_id: string }>('POST', '/api/routing-rules', fields);
  expect(created.status).toBe(201);
  const ruleId = created.json.rule_id;
  for (let n = 0; n < 10; n++) await send('POST', '/api/ingest/shop', { event_type: 'window', payload: { n } });
  const started = await send<{ job_id: string }>('POST', `/api/routing-rules/${ruleId}/replay`, {
    from,
    to: new Date().toISOString(),
    reevaluate: true,
  });
  expect(started.status).toBe(202);

  // As an upgrade would leave it: the stored condition is one today's limits refuse.
  const updated: RoutingRuleUpdated = {
    type: 'RoutingRuleUpdated',
    data: { ...fields, condition: REFUSED.backreference, rule_id: ruleId, updated_at: new Date().toISOString() },
  };
  await intake.store.append({ streamId: ruleStreamId(ruleId), events: [updated] });
  const deadline = Date.now() + 10_000;
  let job: Record<string, unknown> = {};
  while (job.status !== 'failed' && Date.now() < deadline) {
    job = (await send('GET', `/api/routing-rules/${ruleId}/replays/${started.json.job_id}`)).json;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  expect(job).toMatchObject({ status: 'failed', error: expect.stringMatching(/^the rule's condition cannot run: .*unsupported regular/) });
  expect(job.scanned).toBeLessThan(10);
});

it('is named by `intake rules list`, under the table, with what to do about it', async () => {
  const ruleId = await storedEarlier('listed', REFUSED.backreference);
  // Not spawnSync: the server answering the CLI runs in this very process.
  const listed = await promisify(execFile)(process.execPath, [...INTAKE_CLI, 'rules', 'list', 'shop'], {
    cwd: fileURLToPath(new URL('../../', import.meta.url)),
    env: { ...process.env, INTAKE_URL: base, ADMIN_TOKEN },
    encoding: 'utf8',
  });
  expect(listed.stdout).toMatch(new RegExp(`${ruleId}\\s+listed\\s+\\*\\s+database\\s+0\\s+yes, cannot run\\n`));
  expect(listed.stdout).toMatch(
    new RegExp(`rule ${ruleId} cannot run its condition: .*unsupported regular.* \\(PUT the rule to fix it\\)`),
  );
});
