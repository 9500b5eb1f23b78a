import { afterAll, beforeAll, expect, it } from 'vitest';
import { auth, startTestIntake, type TestIntake } from '../support/embedded-intake.js';

// Issue #13: one deep payload failed 142 of 800 innocent requests that shared its group commit.
let intake: TestIntake;
let base: string;
beforeAll(async () => {
  intake = await startTestIntake();
  base = await intake.app.listen({ port: 0, host: '127.0.0.1' });
  await post('/api/applications', JSON.stringify({ name: 'Shop', app_id: 'shop' }));
});
afterAll(() => intake.dispose());

async function post(path: string, body: string): Promise<{ status: number; type: string; json: unknown }> {
  const response = await fetch(`${base}${path}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body });
  return { status: response.status, type: response.headers.get('content-type') ?? '', json: await response.json() };
}

const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
const HOSTILE: ReadonlyArray<[string, string]> = [
  ['/ingest', `{"partner_id":"evil","payload":{"x":${deep(100_000)}}}`],
  ['/ingest', `{"partner_id":"evil","payload":{"x":${deep(65)}}}`],
  ['/ingest', '{"partner_id":"evil\\ud800","payload":{}}'],
  ['/api/ingest/shop', '{"event_type":"evil","payload":{"\\udc00":1}}'],
  ['/api/ingest/shop', '{"event_type":"evil","payload":{"n":1e309}}'],
  ['/api/messages/shop', '{"n":123456789012345678901234567890}'],
  [
    '/api/routing-rules',
    `{"app_id":"shop","rule_name":"evil","condition":${deep(5000)},"destination_type":"database","destination_config":{"table":"t"}}`,
  ],
  ['/api/v1/tracking/events', `{"partner_id":${deep(20_000)}}`],
];

type Normal = { path: string; body: string; check: (answer: { status: number; json: unknown }) => void };
const normal = (i: number): Normal => {
  switch (i % 4) {
    case 0:
      return {
        path: '/ingest',
        body: JSON.stringify({ partner_id: `p${i}`, payload: { i, nested: { list: [1, 2, 3] } } }),
        check: (a) => expect(a.status).toBe(201),
      };
    case 1:
      return {
        path: '/api/ingest/shop',
        body: JSON.stringify({ event_type: 'order', payload: { i } }),
        check: (a) => expect(a.status).toBe(201),
      };
    case 2:
      // A batch that carries one hostile event: that event is rejected alone, the others are stored.
      return {
        path: '/api/ingest/shop/batch',
        body: `{"events":[{"event_type":"a","payload":{"i":${i}}},{"event_type":"evil","payload":${deep(200)}},{"event_type":"b","payload":{"i":${i}}}]}`,
        check: (a) => {
          expect(a.status).toBe(200);
          expect(a.json).toMatchObject({ accepted: 2, rejected: 1 });
        },
      };
    default:
      return {
        path: '/api/v1/tracking/events',
        body: JSON.stringify({
          partner_id: 'p',
          campaign_id: 'c',
          visitor_id: `v${i}`,
          interaction_type: 'click',
          source_url: 'https://a.example/',
          destination_url: 'https://b.example/',
        }),
        check: (a) => expect(a.status).toBe(201),
      };
  }
};

it('hostile requests mixed with normal ones fail alone: every normal request succeeds', async () => {
  const work: Array<() => Promise<void>> = [];
  const failures: string[] = [];
  for (let i = 0; i < 400; i++) {
    const request = normal(i);
    work.push(async () => {
      const answer = await post(request.path, request.body);
      try {
        request.check(answer);
      } catch {
        failures.push(`${request.path} → ${answer.status} ${JSON.stringify(answer.json).slice(0, 200)}`);
      }
    });
    const [path, body] = HOSTILE[i % HOSTILE.length] as [string, string];
    work.push(async () => {
      const answer = await post(path, body);
      expect(answer.status, path).toBe(400);
      expect(answer.type).toMatch(/^application\/problem\+json/);
    });
  }
  // 32 requests in flight at a time, hostile and normal interleaved, so they share group commits.
  const queue = [...work];
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      for (let next = queue.shift(); next; next = queue.shift()) await next();
    }),
  );
  expect(failures).toEqual([]);
  expect((await fetch(`${base}/health`)).status).toBe(200);
});
