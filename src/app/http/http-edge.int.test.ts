import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, startTestIntake, type TestIntake } from '../../../test/support/embedded-intake.js';

let intake: TestIntake;
beforeAll(async () => {
  intake = await startTestIntake({ BODY_LIMIT: '65536', MAX_JSON_DEPTH: '16', MAX_JSON_VALUES: '1000' });
});
afterAll(() => intake.dispose());

const postRaw = (url: string, text: string, contentType = 'application/json') =>
  intake.app.inject({ method: 'POST', url, headers: { ...auth, 'content-type': contentType }, payload: text });

const nested = (depth: number, leaf = '1') => '{"a":'.repeat(depth) + leaf + '}'.repeat(depth);

async function expectProblem(response: { statusCode: number; headers: Record<string, unknown>; json(): unknown }, status: number) {
  expect(response.statusCode).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  return response.json() as { code: string; detail: string; errors?: Array<{ path: string; message: string }> };
}

async function itemCount(): Promise<number> {
  return (await intake.store.readAll({ after: 0, limit: 100_000 })).filter((e) => e.type === 'DataReceived').length;
}

describe('JSON limits at the edge', () => {
  it('refuses JSON nested deeper than MAX_JSON_DEPTH with the path, and stores nothing', async () => {
    const before = await itemCount();
    // The body is one level above the payload: 15 levels of payload fit in 16.
    expect((await postRaw('/ingest', `{"partner_id":"p","payload":${nested(15)}}`)).statusCode).toBe(201);
    const problem = await expectProblem(await postRaw('/ingest', `{"partner_id":"p","payload":${nested(16)}}`), 400);
    expect(problem.code).toBe('request.json-too-deep');
    expect(problem.errors?.[0]?.path).toBe(`payload${'.a'.repeat(15)}`);
    expect(problem.detail).toContain('nests deeper than 16 levels');
    expect(await itemCount()).toBe(before + 1);
  });

  it('refuses with 413 a body holding more values than MAX_JSON_VALUES, and in a batch only the event that does', async () => {
    const before = await itemCount();
    // The body, partner_id, payload and 997 keys are 1,000 values; one key more is too many.
    const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
    expect((await postRaw('/ingest', JSON.stringify({ partner_id: 'p', payload: keys(997) }))).statusCode).toBe(201);
    const problem = await expectProblem(await postRaw('/ingest', JSON.stringify({ partner_id: 'p', payload: keys(998) })), 413);
    expect(problem).toMatchObject({ code: 'request.json-too-many-values', detail: expect.stringMatching(/past the 1000 values/) });
    const batch = await postRaw(
      '/api/ingest/shop/batch',
      JSON.stringify({
        events: [
          { event_type: 'e', payload: { list: Array.from({ length: 2000 }, () => [1]) } },
          { event_type: 'e', payload: {} },
        ],
      }),
    );
    expect(batch.json()).toMatchObject({
      accepted: 1,
      rejected: 1,
      results: [{ status: 'rejected', errors: [{ message: expect.stringMatching(/past the 1000 values/) }] }, { status: 'accepted' }],
    });
    expect(await itemCount()).toBe(before + 2);
  });

  it('answers 400, not 500, to nesting far beyond any stack', async () => {
    const deep = `{"partner_id":"p","payload":{"x":${'['.repeat(30_000)}${']'.repeat(30_000)}}}`;
    for (const url of ['/ingest', '/api/ingest/shop', '/api/messages/shop', '/api/routing-rules', '/api/v1/tracking/events']) {
      expect((await expectProblem(await postRaw(url, deep), 400)).code).toBe('request.json-too-deep');
    }
  });

  it('refuses a JSON body declared in another charset than UTF-8 (its bytes would be stored as UTF-8, changed)', async () => {
    const before = await itemCount();
    for (const charset of ['iso-8859-1', 'latin1', 'UTF-16', '"windows-1252"']) {
      const refused = await expectProblem(
        await postRaw('/api/ingest/shop', '{"event_type":"cs","payload":{"name":"café"}}', `application/json; charset=${charset}`),
        415,
      );
      expect(refused.code).toBe('request.unsupported-charset');
    }
    expect(await itemCount()).toBe(before);
    for (const charset of ['utf-8', 'UTF8', '"utf-8"', 'us-ascii'])
      expect((await postRaw('/ingest', '{"partner_id":"p","payload":{}}', `application/json; charset=${charset}`)).statusCode).toBe(201);
    // No body, nothing to decode: a client that labels every request so is not refused.
    for (const labels of [
      { 'content-type': 'application/json; charset=iso-8859-1' },
      { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    ]) {
      const bodiless = await intake.app.inject({
        method: 'DELETE',
        url: '/api/routing-rules/no-such-rule',
        headers: { ...auth, ...labels },
      });
      expect(bodiless.json().code).toBe('routing.rule-not-found');
    }
  });

  it('refuses lone surrogates in strings and keys, naming the path', async () => {
    const value = await expectProblem(await postRaw('/ingest', '{"partner_id":"p\\ud800","payload":{}}'), 400);
    expect(value).toMatchObject({ code: 'request.invalid-unicode', errors: [{ path: 'partner_id' }] });
    const key = await expectProblem(await postRaw('/api/ingest/shop', '{"event_type":"e","payload":{"list":[{"\\udc00":1}]}}'), 400);
    expect(key.errors?.[0]?.path).toBe('payload.list[0]["\\udc00"]');
    // A proper pair is fine.
    expect((await postRaw('/ingest', '{"partner_id":"p\\ud83d\\ude00","payload":{}}')).statusCode).toBe(201);
  });

  it('refuses NUL characters (PostgreSQL cannot store them) in strings, keys, path and query parameters and cursors', async () => {
    const before = await itemCount();
    const value = await expectProblem(await postRaw('/ingest', '{"partner_id":"p","payload":{"s":"a\\u0000b"}}'), 400);
    expect(value).toMatchObject({
      code: 'request.invalid-unicode',
      errors: [{ path: 'payload.s', message: expect.stringMatching(/NUL/) }],
    });
    const key = await expectProblem(await postRaw('/api/ingest/shop', '{"event_type":"e","payload":{"k\\u0000":1}}'), 400);
    expect(key).toMatchObject({ code: 'request.invalid-unicode', errors: [{ path: 'payload["k\\u0000"]' }] });
    const batch = await postRaw(
      '/api/ingest/shop/batch',
      JSON.stringify({
        events: [
          { event_type: 'e', payload: { s: 'a\u0000' } },
          { event_type: 'e', payload: { s: 'fine' } },
        ],
      }),
    );
    expect(batch.statusCode).toBe(200);
    expect(batch.json()).toMatchObject({ accepted: 1, rejected: 1, results: [{ status: 'rejected' }, { status: 'accepted' }] });
    expect(await itemCount()).toBe(before + 1);
    const get = (url: string) => intake.app.inject({ method: 'GET', url, headers: auth });
    for (const url of ['/ingest/a%00b', '/api/events/app/sh%00p', '/query/partner/p?payload.s=a%00', '/api/applications?cursor=AA']) {
      expect((await expectProblem(await get(url), 400)).code).toMatch(/^(request\.invalid-unicode|pagination\.invalid-cursor)$/);
    }
    // A literal "%00" is fine: it arrives as %2500.
    expect((await postRaw('/ingest', '{"partner_id":"p","payload":{"s":"100%00 sure \\\\u0000"}}')).statusCode).toBe(201);
  });

  it('refuses bad percent-encoding in the query string as in the path, rather than filter by the raw text', async () => {
    const get = (url: string) => intake.app.inject({ method: 'GET', url, headers: auth });
    for (const url of [
      '/api/events/app/shop?payload.s=%E9',
      '/api/events/app/shop?event_type=%C3',
      '/query/partner/p?status=%zz',
      '/ingest/all?limit=5%',
    ]) {
      expect((await expectProblem(await get(url), 400)).code, url).toBe('request.bad-url');
    }
    expect((await get('/api/events/app/shop?payload.s=%C3%A9+x%2B%25')).statusCode).toBe(200);
  });

  it('refuses numbers beyond a double and integers beyond 2^53-1 instead of changing them', async () => {
    const infinite = await expectProblem(await postRaw('/ingest', '{"partner_id":"p","payload":{"n":[1,1e309]}}'), 400);
    expect(infinite).toMatchObject({ code: 'request.number-out-of-range', errors: [{ path: 'payload.n[1]' }] });
    const big = await expectProblem(await postRaw('/ingest', '{"partner_id":"p","payload":{"id":9007199254740993}}'), 400);
    expect(big).toMatchObject({ code: 'request.number-out-of-range', errors: [{ path: 'payload.id' }] });
    const kept = await postRaw('/ingest', '{"partner_id":"p","payload":{"max":9007199254740991,"f":1.5e300,"s":"9007199254740993"}}');
    expect(kept.statusCode).toBe(201);
    expect(kept.json().payload).toEqual({ max: 9007199254740991, f: 1.5e300, s: '9007199254740993' });
  });

  it('rejects a batch event that breaks the limits alone, with its own receipt', async () => {
    const events = [
      '{"event_type":"ok","payload":{"n":1}}',
      `{"event_type":"deep","payload":${nested(16)}}`,
      '{"event_type":"bad","payload":{"s":"\\ud800"}}',
      '{"event_type":"big","payload":{"n":123456789012345678901}}',
      '{"event_type":"ok","payload":{"n":2}}',
      '{"event_type":"proto","payload":{"x":{"__proto__":{"admin":true}}}}',
    ];
    const response = await postRaw('/api/ingest/shop/batch', `{"events":[${events.join(',')}]}`);
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body).toMatchObject({ accepted: 2, rejected: 4 });
    expect(body.results.map((r: { index: number; status: string }) => [r.index, r.status])).toEqual([
      [0, 'accepted'],
      [1, 'rejected'],
      [2, 'rejected'],
      [3, 'rejected'],
      [4, 'accepted'],
      [5, 'rejected'],
    ]);
    expect(body.results[5].errors[0]).toMatchObject({ path: 'payload.x.__proto__' });
    expect(body.results[1].errors[0].path).toBe(`payload${'.a'.repeat(15)}`);
    expect(body.results[2].errors[0]).toMatchObject({ path: 'payload.s' });
    await intake.subscriptions.caughtUp(30_000);
    const stored = await intake.app.inject({ url: `/api/events/${body.results[4].event_id}`, headers: auth });
    expect(stored.json()).toMatchObject({ payload: { n: 2 } });
  });

  it('rejects a tracking event that breaks the limits alone, and records the others of its batch', async () => {
    const good = (visitor: string) =>
      `{"partner_id":"p","campaign_id":"c","visitor_id":"${visitor}","interaction_type":"click","source_url":"https://a.example/x","destination_url":"https://b.example/y"}`;
    const events = [
      good('v1'),
      `{"partner_id":"p","campaign_id":"c","visitor_id":"v2","interaction_type":"click","source_url":"https://a.example/x","destination_url":"https://b.example/y","extra":${nested(16)}}`,
      good('v3').replace('"v3"', '"\\ud800"'),
      good('v4'),
    ];
    const response = await postRaw('/api/v1/tracking/events/batch', `{"events":[${events.join(',')}]}`);
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body).toMatchObject({ recorded: 2, rejected: 2 });
    expect(body.receipts.map((r: { index: number; status: string }) => [r.index, r.status])).toEqual([
      [0, 'recorded'],
      [1, 'rejected'],
      [2, 'rejected'],
      [3, 'recorded'],
    ]);
    expect(body.receipts[2].errors[0]).toMatchObject({ path: 'visitor_id' });
  });

  it('says why a body with a prototype key is refused', async () => {
    for (const text of [
      '{"partner_id":"p","payload":{"__proto__":{"admin":true}}}',
      '{"partner_id":"p","payload":{"constructor":{"prototype":{}}}}',
    ]) {
      expect((await expectProblem(await postRaw('/ingest', text), 400)).code).toBe('request.forbidden-key');
    }
  });

  it('refuses a body that is not UTF-8 instead of storing replacement characters', async () => {
    const before = await itemCount();
    const bytes = Buffer.concat([Buffer.from('{"partner_id":"p","payload":{"s":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}}')]);
    const response = await intake.app.inject({
      method: 'POST',
      url: '/ingest',
      headers: { ...auth, 'content-type': 'application/json' },
      payload: bytes,
    });
    expect((await expectProblem(response, 400)).code).toBe('request.invalid-unicode');
    const withBom = await postRaw('/ingest', '\ufeff{"partner_id":"p","payload":{"s":"é"}}');
    expect(withBom.statusCode).toBe(201);
    expect(await itemCount()).toBe(before + 1);
  });

  it('answers a batch whose envelope breaks the limits with one 400', async () => {
    const problem = await expectProblem(
      await postRaw('/api/ingest/shop/batch', '{"events":[{"event_type":"a","payload":{}}],"note":"\\ud800"}'),
      400,
    );
    expect(problem.code).toBe('request.invalid-unicode');
  });
});

describe('what is accepted reads back unchanged', () => {
  it('keeps object keys holding line terminators (U+2028, U+2029, newline)', async () => {
    const payload = { 'a\u2029b': 1, 'c\nd': { 'e\u2028f': [true] }, plain: 'x' };
    const created = await postRaw('/ingest', JSON.stringify({ partner_id: 'p', payload }));
    expect(created.json().payload).toEqual(payload);
    expect((await intake.app.inject({ url: `/ingest/${created.json().id}`, headers: auth })).json().payload).toEqual(payload);
  });
});

describe('every error is problem+json', () => {
  it('covers bad URL encoding, a path parameter too long, media type, size and malformed JSON', async () => {
    expect((await expectProblem(await intake.app.inject({ url: '/ingest/%zz', headers: auth }), 400)).code).toBe('request.bad-url');
    const long = await expectProblem(await intake.app.inject({ url: `/ingest/${'a'.repeat(5000)}`, headers: auth }), 414);
    expect(long.code).toBe('request.path-too-long');
    // Refused before routing, they echo the correlation id as every other answer does.
    for (const url of ['/ingest/%zz', `/ingest/${'a'.repeat(5000)}`]) {
      const refused = await intake.app.inject({ url, headers: { ...auth, 'x-correlation-id': 'corr-before-routing' } });
      expect(refused.headers['x-correlation-id'], url).toBe('corr-before-routing');
    }
    expect(long.detail.length).toBeLessThan(100);
    const xml = await expectProblem(await postRaw('/ingest', '<a/>', 'text/xml'), 415);
    expect([xml.code, xml.detail]).toEqual([
      'request.unsupported-media-type',
      'Content-Type text/xml is not accepted here: send application/json',
    ]);
    const huge = JSON.stringify({ partner_id: 'p', payload: { s: 'x'.repeat(70_000) } });
    const tooLarge = await expectProblem(await postRaw('/ingest', huge), 413);
    expect(tooLarge.code).toBe('request.body-too-large');
    expect(tooLarge.detail).toMatch(/^the body is larger than the [0-9,]+ bytes this endpoint takes$/);
    expect((await expectProblem(await postRaw('/ingest', '{"partner_id":'), 400)).code).toBe('request.malformed-json');
  });

  it('takes an empty body labelled JSON as no body: a route that needs one says so, the others go on', async () => {
    const empty = await expectProblem(await postRaw('/ingest', ''), 400);
    expect(empty.code).toBe('request.invalid');
    expect(empty.detail).toMatch(/body/);
    const missing = await intake.app.inject({
      method: 'DELETE',
      url: '/api/routing-rules/no-such-rule',
      headers: { ...auth, 'content-type': 'application/json' },
    });
    expect([missing.statusCode, missing.json().code]).toEqual([404, 'routing.rule-not-found']);
  });

  it('answers 405 with Allow to a method a path has no route for, and 404 to a path with none', async () => {
    const put = await expectProblem(await intake.app.inject({ method: 'PUT', url: '/ingest', headers: auth }), 405);
    expect(put.code).toBe('route.method-not-allowed');
    expect((await intake.app.inject({ method: 'PUT', url: '/ingest', headers: auth })).headers.allow).toBe('POST');
    // Path parameters match as the router matches them; GET routes answer HEAD too.
    const deleteItem = await intake.app.inject({ method: 'DELETE', url: '/query/some-id?x=1', headers: auth });
    expect(deleteItem.statusCode).toBe(405);
    expect(deleteItem.headers.allow).toBe('GET, HEAD');
    const missing = await expectProblem(await intake.app.inject({ method: 'PUT', url: '/no/such/path', headers: auth }), 404);
    expect(missing.code).toBe('route.not-found');
    // A write key in a path no route matches (a typo of the settings path) stays out of the detail, which is logged.
    const key = 'wk_d6f5305cfb9112c0_X0YkDeS1AVDwRsJnevg_C5j_Q5OjuCppJ';
    for (const [method, url] of [
      ['GET', `/v1/projects/${key}/settings/`],
      ['POST', `/v1/projects/${key}/settings`],
    ] as const) {
      const typo = (await intake.app.inject({ method, url })).json();
      expect(typo.detail).toContain('/v1/projects/[redacted]/settings');
      expect(JSON.stringify(typo)).not.toContain(key);
    }
    // A file route takes GET for every path under it: a file it does not have is not found, not a wrong method.
    for (const method of ['GET', 'HEAD'] as const) {
      const file = await intake.app.inject({ method, url: '/docs/static/no-such-file.js' });
      expect([file.statusCode, file.headers.allow]).toEqual([404, undefined]);
    }
  });

  it('holds query parameters to the text of their type instead of converting near misses', async () => {
    for (const limit of ['1.5', '1e2', '0x10', '%205', '']) {
      const problem = await expectProblem(await intake.app.inject({ url: `/query/all?limit=${limit}`, headers: auth }), 400);
      expect(problem.errors).toEqual([{ path: 'querystring.limit', message: 'must be integer' }]);
    }
    const history = await expectProblem(await intake.app.inject({ url: '/query/all?history=1', headers: auth }), 400);
    expect(history.errors).toEqual([{ path: 'querystring.history', message: 'must be boolean' }]);
    expect((await intake.app.inject({ url: '/query/all?limit=2&history=false', headers: auth })).statusCode).toBe(200);
  });

  it('refuses a compressed body by name outside the tracking API, and stores nothing', async () => {
    const before = await itemCount();
    const body = JSON.stringify({ partner_id: 'p', payload: { n: 1 } });
    for (const encoding of ['gzip', 'br']) {
      const response = await intake.app.inject({
        method: 'POST',
        url: '/ingest',
        headers: { ...auth, 'content-type': 'application/json', 'content-encoding': encoding },
        payload: encoding === 'gzip' ? gzipSync(body) : body,
      });
      expect((await expectProblem(response, 415)).code).toBe('request.unsupported-encoding');
    }
    const plain = await intake.app.inject({
      method: 'POST',
      url: '/ingest',
      headers: { ...auth, 'content-type': 'application/json', 'content-encoding': 'identity' },
      payload: body,
    });
    expect(plain.statusCode).toBe(201);
    expect(await itemCount()).toBe(before + 1);
  });

  it('gives one entry per missing field with a plain message', async () => {
    const problem = await expectProblem(await postRaw('/ingest', '{}'), 400);
    expect(problem.errors).toEqual([
      { path: 'partner_id', message: 'is required' },
      { path: 'payload', message: 'is required' },
    ]);
    expect(problem.detail).toBe('partner_id is required; payload is required');
    const rule = await expectProblem(await postRaw('/api/routing-rules', '{}'), 400);
    expect(rule.errors?.every((e) => e.message === 'is required')).toBe(true);
    expect(rule.errors?.map((e) => e.path)).toContain('app_id');
    expect(new Set(rule.errors?.map((e) => e.path)).size).toBe(rule.errors?.length);
  });

  it('refuses date-times that RFC 3339 allows but a JavaScript Date cannot hold with a 400, not a 500', async () => {
    const get = (url: string) => intake.app.inject({ method: 'GET', url, headers: auth });
    for (const instant of ['2016-12-31T23:59:60Z', '2026-01-01T00:00:00Z[Europe/Paris]']) {
      const at = encodeURIComponent(instant);
      for (const url of [`/api/statistics/shop?from=${at}`, `/api/statistics/shop?to=${at}`, `/api/events/app/shop?from=${at}`]) {
        const problem = await expectProblem(await get(url), 400);
        expect(problem.code).toBe('request.invalid');
        expect(problem.detail).toMatch(/date-time/);
      }
    }
    expect((await get(`/api/statistics/shop?from=${encodeURIComponent('2016-12-31T23:59:59+01:00')}`)).statusCode).toBe(200);
    expect((await get('/api/events/app/shop?to=2016-12-31T23:59:59Z')).statusCode).toBe(200);
  });

  it('answers a request with bad framing with problem+json over real HTTP, saying what is wrong', async () => {
    const address = await intake.app.listen({ port: 0, host: '127.0.0.1' });
    const port = Number(new URL(address).port);
    const send = (head: string, body: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () =>
          socket.write(`POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${head}\r\n\r\n${body}`),
        );
        let text = '';
        socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
        socket.on('close', () => resolve(text));
        socket.on('error', reject);
      });
    const problemOf = (answer: string) => {
      expect(answer).toMatch(/^HTTP\/1.1 400/);
      expect(answer).toMatch(/content-type: application\/problem\+json/i);
      return JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { status: number; code: string; detail: string };
    };
    const twice = problemOf(await send('Content-Length: 2\r\nContent-Length: 3', '{}'));
    expect(twice).toMatchObject({ status: 400, code: 'request.invalid' });
    expect(twice.detail).toMatch(/duplicate content-length/i);
    const both = problemOf(await send('Transfer-Encoding: chunked\r\nContent-Length: 3', '0\r\n\r\n'));
    expect(both.detail).toMatch(/transfer-encoding/i);
  });
});
