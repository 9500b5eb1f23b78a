import { afterAll, beforeAll, expect, it } from 'vitest';
import { auth, startTestIntake, type TestIntake } from '../support/embedded-intake.js';

// Worst cases of what rules and schemas may cost (docs/decisions/0034): a pattern RE2 may run 989
// threads at once for took 12.5 s of a thread on 1 MB of random a's and b's before.
const COSTLY_PATTERN = 'a[ab]{985}c';
let seed = 7;
const randomAb = (length: number) =>
  Array.from({ length }, () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % 2 === 0 ? 'a' : 'b';
  }).join('') + 'c';

let intake: TestIntake;
let base: string;
beforeAll(async () => {
  intake = await startTestIntake();
  base = await intake.app.listen({ port: 0, host: '127.0.0.1' });
});
afterAll(() => intake.dispose());

const send = (method: string, path: string, body?: unknown) =>
  fetch(`${base}${path}`, {
    method,
    headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

it('refuses with 422 an event whose routing rules would cost too much, and routes the others of a batch', async () => {
  expect((await send('POST', '/api/applications', { name: 'Rules', app_id: 'rules' })).status).toBe(201);
  const rule = await send('POST', '/api/routing-rules', {
    app_id: 'rules',
    rule_name: 'costly',
    condition: { 'payload.s': { $regex: COSTLY_PATTERN } },
    destination_type: 'database',
    destination_config: { table: 'costly_events' },
  });
  expect(rule.status, await rule.clone().text()).toBe(201);

  const refused = await send('POST', '/api/ingest/rules', { event_type: 'e', payload: { s: randomAb(900_000) } });
  expect(refused.status).toBe(422);
  expect(refused.headers.get('content-type')).toMatch(/application\/problem\+json/);
  expect(await refused.json()).toMatchObject({
    code: 'routing.rules-too-costly',
    detail: expect.stringMatching(/more than 10,000,000 steps \(rule [0-9a-f-]+: \$regex at payload\.s \(2967 steps a character\)/),
  });

  const batch = await send('POST', '/api/ingest/rules/batch', {
    events: [
      { event_type: 'e', payload: { s: 'ab' } },
      { event_type: 'e', payload: { s: randomAb(300_000) } },
      { event_type: 'e', payload: { s: `a${'b'.repeat(985)}c` } },
    ],
  });
  expect(batch.status).toBe(200);
  const { results } = (await batch.json()) as { results: Array<{ status: string; reason?: string; routing_summary?: object }> };
  expect(results.map((r) => r.status)).toEqual(['accepted', 'rejected', 'accepted']);
  expect(results[1]?.reason).toMatch(/routing rules of application rules on this event would take more than/);
  expect(results[2]?.routing_summary).toMatchObject({ rules_matched: 1 });

  // A Segment message (its payload is the whole message) answers the same code and status.
  const key = ((await (await send('POST', '/api/applications/rules/keys')).json()) as { key: string }).key;
  const track = await fetch(`${base}/v1/track`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${key}:`).toString('base64')}`, 'content-type': 'application/json' },
    body: JSON.stringify({ event: 'e', userId: 'u1', s: randomAb(10_000) }),
  });
  expect(track.status).toBe(422);
  expect(await track.json()).toMatchObject({ code: 'routing.rules-too-costly' });
});

it('judges an item invalid when checking it against its schema would cost too much, naming the string', async () => {
  expect(
    (
      await send('PUT', '/api/schemas/costly', {
        schema: { type: 'object', properties: { s: { type: 'string', pattern: COSTLY_PATTERN } } },
      })
    ).status,
  ).toBe(200);
  const stored = await send('POST', '/api/ingest/schemas', { event_type: 'costly', payload: { s: randomAb(900_000) } });
  expect(stored.status).toBe(201);
  const id = ((await stored.json()) as { data: { event_id: string } }).data.event_id;
  await expect
    .poll(async () => ((await (await send('GET', `/query/${id}?history=false`)).json()) as { status: string }).status, { timeout: 20_000 })
    .toBe('invalid');
  const item = (await (await send('GET', `/query/${id}`)).json()) as { validation: { errors: unknown[] } };
  expect(item.validation.errors).toMatchObject([
    { path: 'payload.s', rule: 'cost', message: expect.stringMatching(/2967 steps a character/) },
  ]);
});
