import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, startTestIntake, type TestIntake } from '../support/embedded-intake.js';

type Operation = {
  summary?: string;
  responses?: Record<string, { content?: Record<string, unknown>; headers?: Record<string, unknown> }>;
  security?: Array<Record<string, string[]>>;
  parameters?: Array<{ in: string; name?: string }>;
  requestBody?: { required?: boolean; content: Record<string, { schema: { properties?: Record<string, unknown> } }> };
};

/** Operations that answer without a token and cannot be refused: the probes. */
const CANNOT_FAIL = new Set(['GET /health', 'GET /health/ready', 'GET /', 'GET /api/v1/tracking/health']);

let intake: TestIntake;
let operations: Array<[string, Operation]>;
let globalSecurity: unknown[];

beforeAll(async () => {
  intake = await startTestIntake();
  await intake.app.inject({ method: 'POST', url: '/api/applications', headers: auth, payload: { name: 'Shop', app_id: 'shop' } });
  const doc = (await intake.app.inject({ method: 'GET', url: '/openapi.json' })).json<{
    paths: Record<string, Record<string, Operation>>;
    security: unknown[];
  }>();
  globalSecurity = doc.security;
  operations = Object.entries(doc.paths).flatMap(([path, byMethod]) =>
    Object.entries(byMethod).map(([method, operation]): [string, Operation] => [`${method.toUpperCase()} ${path}`, operation]),
  );
});

afterAll(() => intake?.dispose());

describe('the OpenAPI document of the whole service', () => {
  it('says a body is required where the route needs one, and not where it may be left out', async () => {
    const optional = [
      'PATCH /api/routing-rules/{rule_id}/toggle',
      'POST /api/applications/{app_id}/keys',
      'POST /api/routing/dead-letters/replay',
    ];
    for (const [name, operation] of operations.filter(([, op]) => op.requestBody)) {
      expect(operation.requestBody?.required, name).toBe(!optional.includes(name));
      expect(operation, name).not.toHaveProperty('x-optional-body');
    }
    // And the server takes them so.
    const issued = await intake.app.inject({ method: 'POST', url: '/api/applications/shop/keys', headers: auth });
    expect(issued.statusCode).toBe(201);
  });

  it('gives every operation a summary and a documented success', () => {
    expect(operations.length).toBeGreaterThan(50);
    const lacking = operations.filter(
      ([, operation]) => !operation.summary || !Object.keys(operation.responses ?? {}).some((code) => code.startsWith('2')),
    );
    expect(lacking.map(([name]) => name)).toEqual([]);
  });

  it('documents the problem details every refusable operation can answer with', () => {
    const undocumented = operations.filter(([name, operation]) => {
      if (CANNOT_FAIL.has(name)) return false;
      const problems = Object.entries(operation.responses ?? {}).filter(([code]) => code.startsWith('4'));
      return problems.length === 0 || problems.some(([, response]) => !response.content?.['application/problem+json']);
    });
    expect(undocumented.map(([name]) => name)).toEqual([]);
  });

  it('documents the 422 of every operation that takes an Idempotency-Key, which it answers to the key sent with another body', () => {
    const keyed = operations.filter(([, operation]) =>
      operation.parameters?.some((p) => p.in === 'header' && p.name?.toLowerCase() === 'idempotency-key'),
    );
    expect(keyed.map(([name]) => name)).toEqual(
      expect.arrayContaining(['POST /api/v1/tracking/events', 'POST /api/v1/tracking/conversions']),
    );
    // The application batch keys each event (`key#0`, `key#1`…) and rejects a changed one in its receipt.
    const perEvent = new Set(['POST /api/ingest/{app_id}/batch']);
    expect(keyed.filter(([name, operation]) => !perEvent.has(name) && !operation.responses?.['422']).map(([name]) => name)).toEqual([]);
  });

  it('documents what the edge answers on every route of a kind, and the edge answers it', async () => {
    const documents = (name: string, status: string) => operations.find(([n]) => n === name)?.[1].responses?.[status] !== undefined;
    const lacking = operations.flatMap(([name, operation]) => [
      ...((operation.security ?? globalSecurity).length > 0 && !operation.responses?.['403'] ? [`${name} 403`] : []),
      ...(operation.parameters?.some((p) => p.in === 'path') && !operation.responses?.['414'] ? [`${name} 414`] : []),
      ...(Object.keys(operation.requestBody?.content ?? {}).join() === 'application/json' && !operation.responses?.['415']
        ? [`${name} 415`]
        : []),
      // A route that takes no body still refuses one of another media type.
      ...(/^(POST|PUT|PATCH|DELETE) /.test(name) && !operation.requestBody && !operation.responses?.['415'] ? [`${name} 415`] : []),
    ]);
    expect(lacking).toEqual([]);
    expect(documents('POST /api/statistics/refresh/{app_id}', '415')).toBe(true);
    const keyed = operations.find(([name]) => name === 'POST /api/ingest/{app_id}')?.[1];
    expect(keyed?.responses?.['201']?.headers).toHaveProperty('Idempotent-Replayed');
    // A batch tells a retry event by event, in its receipts: no header promised that it never sends.
    for (const batch of ['POST /api/ingest/{app_id}/batch', 'POST /api/v1/tracking/events/batch'])
      expect(operations.find(([name]) => name === batch)?.[1].responses?.['200']?.headers ?? {}, batch).not.toHaveProperty(
        'Idempotent-Replayed',
      );
    // The tracking API refuses a charset other than UTF-8 with 415, whatever media types it takes.
    for (const path of ['/v1/batch', '/v1/track', '/v1/import']) expect(documents(`POST ${path}`, '415'), path).toBe(true);
    // A health check's 503 is its status document, as JSON, not a problem.
    expect(Object.keys(operations.find(([name]) => name === 'GET /api/v1/tracking/health')?.[1].responses?.['503']?.content ?? {})).toEqual(
      ['application/json'],
    );
    const bodyless = await intake.app.inject({
      method: 'POST',
      url: '/api/statistics/refresh/shop',
      headers: { ...auth, 'content-type': 'text/plain' },
      payload: 'hello',
    });
    expect(bodyless.statusCode).toBe(415);

    const key = (await intake.app.inject({ method: 'POST', url: '/api/applications/shop/keys', headers: auth })).json<{ key: string }>()
      .key;
    expect(documents('GET /api/routing-rules/{rule_id}', '403')).toBe(true);
    expect(
      (await intake.app.inject({ method: 'GET', url: '/api/routing-rules/r1', headers: { authorization: `Bearer ${key}` } })).statusCode,
    ).toBe(403);
    expect((await intake.app.inject({ method: 'GET', url: `/api/routing-rules/${'r'.repeat(5000)}`, headers: auth })).statusCode).toBe(414);
    const text = await intake.app.inject({
      method: 'POST',
      url: '/ingest',
      headers: { ...auth, 'content-type': 'text/plain' },
      payload: '{}',
    });
    expect(text.statusCode).toBe(415);
  });

  it('documents the tracking API’s write-key credentials and message bodies, which it checks message by message', async () => {
    const [, batch] = operations.find(([name]) => name === 'POST /v1/batch') ?? [];
    expect(batch?.security).toEqual([{ writeKey: [] }, { bearer: [] }]);
    expect(Object.keys(batch?.requestBody?.content ?? {})).toContain('text/plain');
    expect(Object.keys(batch?.requestBody?.content['application/json']?.schema.properties ?? {})).toContain('batch');
    const [, settings] = operations.find(([name]) => name === 'GET /v1/projects/{writeKey}/settings') ?? [];
    expect(settings?.security).toEqual([]);

    // Documented, not checked as a whole: a message of the wrong shape is rejected alone.
    const key = (await intake.app.inject({ method: 'POST', url: '/api/applications/shop/keys', headers: auth })).json<{ key: string }>()
      .key;
    const answer = await intake.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { authorization: `Basic ${Buffer.from(`${key}:`).toString('base64')}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ batch: [{ type: 'track', userId: 'u1', event: 'Viewed' }, 'not a message', { type: 'track', event: 7 }] }),
    });
    expect(answer.statusCode).toBe(200);
    expect(answer.json<{ receipts: Array<{ status: string }> }>().receipts.map((r) => r.status)).toEqual([
      'accepted',
      'rejected',
      'rejected',
    ]);
  });
});
