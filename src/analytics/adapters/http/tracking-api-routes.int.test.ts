import { deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixedClock } from '../../../shared/clock.js';
import { startTestIntake, type TestIntake } from '../../../../test/support/embedded-intake.js';
import { basic, createSource, eventsOf } from '../../../../test/support/analytics-source.js';

const clock = fixedClock('2026-11-24T10:00:00.000Z');
let intake: TestIntake;
let shop: { writeKey: string; keyId: string };
let blog: { writeKey: string; keyId: string };
let sequence = 0;

const track = (extra: Record<string, unknown> = {}) => ({
  type: 'track',
  event: 'Order Completed',
  userId: 'user-1',
  messageId: `m-${++sequence}`,
  properties: { revenue: 42 },
  ...extra,
});

const post = (url: string, payload: unknown, headers: Record<string, string> = {}) =>
  intake.app.inject({
    method: 'POST',
    url,
    headers: { 'content-type': 'application/json', ...headers },
    payload: typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload),
  });

beforeAll(async () => {
  intake = await startTestIntake({}, { clock, startSubscribers: false });
  shop = await createSource(intake, 'shop');
  blog = await createSource(intake, 'blog');
});
afterAll(async () => intake.dispose());

describe('the tracking API', () => {
  it('stores a batch sent with Basic auth as events of the key application, answering as SDKs expect', async () => {
    const before = (await eventsOf(intake, 'shop')).length;
    const response = await post(
      '/v1/batch',
      {
        batch: [track({ messageId: 'batch-1' }), { type: 'identify', userId: 'user-1', traits: { plan: 'pro' }, messageId: 'batch-2' }],
        sentAt: '2026-11-24T09:00:10.000Z',
      },
      basic(shop.writeKey),
    );
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body.success).toBe(true);
    expect(body.receipts.map((r: { status: string }) => r.status)).toEqual(['accepted', 'accepted']);
    const stored = (await eventsOf(intake, 'shop')).slice(before);
    expect(stored.map((e) => e.event_type)).toEqual(['Order Completed', 'identify']);
    expect(stored[0]?.payload).toMatchObject({
      type: 'track',
      event: 'Order Completed',
      properties: { revenue: 42 },
      receivedAt: '2026-11-24T10:00:00.000Z',
      // The batch's sentAt, kept with each message it corrected.
      sentAt: '2026-11-24T09:00:10.000Z',
    });
    expect((stored[0]?.payload.context as Record<string, unknown>).ip).toBe('127.0.0.1');
    // The key decided the application: nothing reached the other one.
    expect(await eventsOf(intake, 'blog')).toEqual([]);
  });

  it('stores track events under the names SDK users give them, punctuation and any script included', async () => {
    const names = ['Product Added (v2)', 'Signed Up!', 'Café Visited', '$pageview'];
    const before = (await eventsOf(intake, 'shop')).length;
    const response = await post('/v1/batch', { batch: names.map((event) => track({ event })) }, basic(shop.writeKey));
    expect(response.json().receipts.map((r: { status: string }) => r.status)).toEqual(['accepted', 'accepted', 'accepted', 'accepted']);
    expect((await eventsOf(intake, 'shop')).slice(before).map((e) => e.event_type)).toEqual(names);
  });

  it('corrects the client clock with sentAt and keeps the original timestamp', async () => {
    const response = await post(
      '/v1/track',
      {
        ...track({ messageId: 'skewed' }),
        timestamp: '2026-11-24T08:59:50.000Z',
        sentAt: '2026-11-24T09:00:00.000Z',
        context: { ip: '203.0.113.9' },
      },
      basic(shop.writeKey),
    );
    expect(response.statusCode).toBe(200);
    const stored = (await eventsOf(intake, 'shop')).find((e) => e.payload.messageId === 'skewed');
    // The client's clock is an hour behind: the event happened 10 s before it was sent.
    expect(stored?.payload.timestamp).toBe('2026-11-24T09:59:50.000Z');
    expect(stored?.payload.originalTimestamp).toBe('2026-11-24T08:59:50.000Z');
    expect((stored?.payload.context as Record<string, unknown>).ip).toBe('203.0.113.9');
  });

  it('takes the timestamps of /v1/import as sent: an export is as old as its sentAt', async () => {
    const old = { timestamp: '2023-03-01T12:00:00.000Z', sentAt: '2023-03-01T12:00:02.000Z' };
    for (const path of ['/v1/import', '/v1/batch']) {
      const response = await post(path, { batch: [track({ messageId: `history${path}`, ...old })] }, basic(shop.writeKey));
      expect(response.json().receipts[0].status).toBe('accepted');
    }
    const stored = await eventsOf(intake, 'shop');
    expect(stored.find((e) => e.payload.messageId === 'history/v1/import')?.payload.timestamp).toBe('2023-03-01T12:00:00.000Z');
    // Live traffic is corrected for the client's clock: it was sent 2 s after it happened.
    expect(stored.find((e) => e.payload.messageId === 'history/v1/batch')?.payload.timestamp).toBe('2026-11-24T09:59:58.000Z');
  });

  it('takes the write key from the body or a Bearer token, and the type from the short path', async () => {
    expect((await post('/v1/p', { writeKey: shop.writeKey, anonymousId: 'anon-1', name: 'Home', messageId: 'short-p' })).statusCode).toBe(
      200,
    );
    expect(
      (
        await post(
          '/v1/t',
          { ...track({ messageId: 'short-t', event: 'Clicked' }), type: undefined },
          { authorization: `Bearer ${shop.writeKey}` },
        )
      ).statusCode,
    ).toBe(200);
    const stored = await eventsOf(intake, 'shop');
    expect(stored.find((e) => e.payload.messageId === 'short-p')?.event_type).toBe('page');
    expect(stored.find((e) => e.payload.messageId === 'short-t')?.event_type).toBe('Clicked');
    expect(stored.find((e) => e.payload.messageId === 'short-p')?.payload).not.toHaveProperty('writeKey');
  });

  it('stores a messageId once: a resent message is a duplicate of the first', async () => {
    const message = track({ messageId: 'once' });
    const first = await post('/v1/batch', { batch: [message, message] }, basic(shop.writeKey));
    const again = await post('/v1/batch', { batch: [message] }, basic(shop.writeKey));
    expect(first.json().receipts.map((r: { status: string }) => r.status)).toEqual(['accepted', 'duplicate']);
    expect(again.json().receipts[0]).toMatchObject({ status: 'duplicate', event_id: first.json().receipts[0].event_id });
    expect((await eventsOf(intake, 'shop')).filter((e) => e.payload.messageId === 'once')).toHaveLength(1);
  });

  it('accepts gzip labelled as a form (RudderStack), deflate, and text/plain (sendBeacon)', async () => {
    const gz = await post('/v1/batch', gzipSync(JSON.stringify({ batch: [track({ messageId: 'gz' })] })), {
      ...basic(shop.writeKey),
      'content-type': 'application/x-www-form-urlencoded',
      'content-encoding': 'gzip',
    });
    const deflated = await post('/v1/batch', deflateSync(JSON.stringify({ batch: [track({ messageId: 'deflated' })] })), {
      ...basic(shop.writeKey),
      'content-encoding': 'deflate',
    });
    const beacon = await post(
      '/beacon/v1/batch?writeKey=' + encodeURIComponent(shop.writeKey),
      JSON.stringify({ batch: [track({ messageId: 'beacon' })] }),
      {
        'content-type': 'text/plain;charset=UTF-8',
      },
    );
    // Bare deflate under the same name, and a list that adds identity, are read too.
    const raw = await post('/v1/batch', deflateRawSync(JSON.stringify({ batch: [track({ messageId: 'raw-deflate' })] })), {
      ...basic(shop.writeKey),
      'content-encoding': 'deflate',
    });
    const listed = await post('/v1/batch', gzipSync(JSON.stringify({ batch: [track({ messageId: 'gzip-identity' })] })), {
      ...basic(shop.writeKey),
      'content-encoding': 'gzip, identity',
    });
    expect([gz.statusCode, deflated.statusCode, beacon.statusCode, raw.statusCode, listed.statusCode]).toEqual([200, 200, 200, 200, 200]);
    const ids = (await eventsOf(intake, 'shop')).map((e) => e.payload.messageId);
    expect(ids).toEqual(expect.arrayContaining(['gz', 'deflated', 'beacon', 'raw-deflate', 'gzip-identity']));
  });

  it("takes analytics.js's batches on /v1/b and serves its settings, pointing it back here", async () => {
    const batched = await post(
      '/v1/b',
      { writeKey: shop.writeKey, batch: [track({ messageId: 'via-b' })], sentAt: '2026-11-24T10:00:00.000Z' },
      { 'content-type': 'text/plain' },
    );
    expect(batched.statusCode).toBe(200);
    expect((await eventsOf(intake, 'shop')).some((e) => e.payload.messageId === 'via-b')).toBe(true);
    const settings = await intake.app.inject({
      method: 'GET',
      url: `/v1/projects/${shop.writeKey}/settings`,
      headers: { host: 'intake.example:8000' },
    });
    expect(settings.statusCode).toBe(200);
    // Never kept by a shared cache for other browsers: it names the host this request asked for.
    expect(settings.headers['cache-control']).toBe('no-store');
    expect(settings.json().integrations['Segment.io']).toEqual({
      apiKey: shop.writeKey,
      apiHost: 'intake.example:8000/v1',
      protocol: 'http',
    });
    expect((await intake.app.inject({ method: 'GET', url: '/v1/projects/wk_unknown/settings' })).statusCode).toBe(401);
  });

  it('names PUBLIC_URL as the API host in the settings when it is set, whatever Host a request names (a forged one was handed on)', async () => {
    const pinned = await startTestIntake({ PUBLIC_URL: 'https://intake.example.com/edge/' }, { startSubscribers: false });
    try {
      const source = await createSource(pinned, 'shop');
      const settings = await pinned.app.inject({
        method: 'GET',
        url: `/v1/projects/${source.writeKey}/settings`,
        headers: { host: 'evil.example:443' },
      });
      expect(settings.json().integrations['Segment.io']).toMatchObject({ apiHost: 'intake.example.com/edge/v1', protocol: 'https' });
    } finally {
      await pinned.dispose();
    }
  });

  it('answers 404 to a /v1 path it does not serve, not 405 as if a preflight route owned it', async () => {
    const unknown = await intake.app.inject({ method: 'GET', url: '/v1/nonexistent' });
    expect(unknown.statusCode).toBe(404);
  });

  it('answers CORS preflights and echoes the origin', async () => {
    const preflight = await intake.app.inject({
      method: 'OPTIONS',
      url: '/v1/t',
      headers: {
        origin: 'https://shop.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,authorization',
      },
    });
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('https://shop.example');
    expect(preflight.headers['access-control-allow-headers']).toBe('content-type,authorization');
    const sent = await post('/v1/t', track(), { ...basic(shop.writeKey), origin: 'https://shop.example' });
    expect(sent.headers['access-control-allow-origin']).toBe('https://shop.example');
    expect(sent.headers['access-control-expose-headers']).toMatch(/X-Correlation-ID/);
  });

  it('says it varies by Origin also to a caller without one, so a shared cache keeps browsers apart', async () => {
    const settings = await intake.app.inject({ method: 'GET', url: `/v1/projects/${shop.writeKey}/settings` });
    expect(settings.statusCode).toBe(200);
    expect(settings.headers.vary).toMatch(/Origin/);
  });

  it('refuses a body declared in a charset other than UTF-8 with 415, storing nothing', async () => {
    const before = (await eventsOf(intake, 'shop')).length;
    const latin1 = await intake.app.inject({
      method: 'POST',
      url: '/v1/t',
      headers: { ...basic(shop.writeKey), 'content-type': 'text/plain; charset=ISO-8859-1' },
      payload: Buffer.from(JSON.stringify(track()), 'latin1'),
    });
    expect([latin1.statusCode, latin1.json().code]).toEqual([415, 'request.unsupported-charset']);
    expect((await eventsOf(intake, 'shop')).length).toBe(before);
    const utf8 = await intake.app.inject({
      method: 'POST',
      url: '/v1/t',
      headers: { ...basic(shop.writeKey), 'content-type': 'application/json; charset="UTF-8"' },
      payload: JSON.stringify(track()),
    });
    expect(utf8.statusCode).toBe(200);
  });
});

describe('allowed origins per application', () => {
  const put = (allowed: unknown) =>
    intake.app.inject({
      method: 'PUT',
      url: '/api/analytics/sources/blog',
      headers: { authorization: 'Bearer test-admin-token' },
      payload: { allowed_origins: allowed },
    });

  it('refuses browsers of other origins once an application names its own, and keeps accepting servers', async () => {
    expect((await put(['https://blog.example/path'])).statusCode).toBe(400);
    expect((await put(['https://blog.example'])).json()).toEqual({ app_id: 'blog', allowed_origins: ['https://blog.example'] });
    const before = (await eventsOf(intake, 'blog')).length;
    const foreign = await post('/v1/t', track(), { ...basic(blog.writeKey), origin: 'https://evil.example' });
    expect(foreign.statusCode).toBe(403);
    expect((await eventsOf(intake, 'blog')).length).toBe(before);
    expect((await post('/v1/t', track(), { ...basic(blog.writeKey), origin: 'https://blog.example' })).statusCode).toBe(200);
    expect((await post('/v1/t', track(), basic(blog.writeKey))).statusCode).toBe(200);
    // Other applications keep accepting any origin.
    expect((await post('/v1/t', track(), { ...basic(shop.writeKey), origin: 'https://evil.example' })).statusCode).toBe(200);
    await put(null);
    expect((await post('/v1/t', track(), { ...basic(blog.writeKey), origin: 'https://evil.example' })).statusCode).toBe(200);
  });

  it('keeps origins as browsers send them and lets a *. entry allow subdomains', async () => {
    const saved = await put(['https://Blog.example:443', 'https://*.blog.example']);
    expect(saved.json()).toEqual({ app_id: 'blog', allowed_origins: ['https://blog.example', 'https://*.blog.example'] });
    const from = async (origin: string) => (await post('/v1/t', track(), { ...basic(blog.writeKey), origin })).statusCode;
    expect(await from('https://blog.example')).toBe(200);
    expect(await from('https://www.blog.example')).toBe(200);
    expect(await from('https://*.blog.example')).toBe(403);
    expect(await from('https://notblog.example')).toBe(403);
    await put(null);
  });

  it('keeps no settings for an application that does not exist', async () => {
    const response = await intake.app.inject({
      method: 'PUT',
      url: '/api/analytics/sources/no-such-app',
      headers: { authorization: 'Bearer test-admin-token' },
      payload: { allowed_origins: ['https://a.example'] },
    });
    expect(response.statusCode).toBe(404);
    expect(response.json().code).toBe('analytics.unknown-application');
    const shown = await intake.app.inject({
      method: 'GET',
      url: '/api/analytics/sources/no-such-app',
      headers: { authorization: 'Bearer test-admin-token' },
    });
    expect([shown.statusCode, shown.json().code]).toEqual([404, 'analytics.unknown-application']);
  });
});

describe('bad input to the tracking API', () => {
  const rejectedAlone = async (bad: Record<string, unknown>, code: string) => {
    const before = await eventsOf(intake, 'shop');
    const good = track();
    const response = await post('/v1/batch', { batch: [bad, good] }, basic(shop.writeKey));
    expect(response.statusCode).toBe(200);
    const [badReceipt, goodReceipt] = response.json().receipts;
    expect(badReceipt).toMatchObject({ index: 0, status: 'rejected', code });
    // The client learns which of its messages was refused, whatever refused it.
    expect(badReceipt.messageId).toBe(bad.messageId);
    expect(goodReceipt).toMatchObject({ index: 1, status: 'accepted' });
    const after = await eventsOf(intake, 'shop');
    expect(after.length).toBe(before.length + 1);
    expect(after.at(-1)?.payload.messageId).toBe(good.messageId);
    // Alone, the same message is the request's problem.
    const alone = await post('/v1/batch', { batch: [bad] }, basic(shop.writeKey));
    expect(alone.statusCode).toBe(code === 'analytics.message-too-large' ? 413 : 400);
    expect(alone.headers['content-type']).toContain('application/problem+json');
    expect(alone.json().code).toBe(code);
    expect((await eventsOf(intake, 'shop')).length).toBe(after.length);
  };

  it('rejects a message without type', () => rejectedAlone({ userId: 'u', event: 'x', messageId: 'no-type' }, 'analytics.missing-type'));
  it('rejects a message of an unknown type', () => rejectedAlone(track({ type: 'purchase' }), 'analytics.unknown-type'));
  it('rejects a message without userId or anonymousId', () => rejectedAlone(track({ userId: undefined }), 'analytics.missing-identity'));
  it('rejects an alias without previousId', () => rejectedAlone({ type: 'alias', userId: 'u' }, 'analytics.missing-identity'));
  it('rejects a blank messageId, naming it as sent', () => rejectedAlone(track({ messageId: '' }), 'analytics.invalid-message'));
  it('rejects a wrong timestamp', () => rejectedAlone(track({ timestamp: 'yesterday' }), 'analytics.invalid-timestamp'));
  it('rejects a message over 32 KB', () =>
    rejectedAlone(track({ properties: { blob: 'x'.repeat(33 * 1024) } }), 'analytics.message-too-large'));

  it('refuses a missing or unknown write key with 401', async () => {
    const missing = await post('/v1/batch', { batch: [track()] });
    const unknown = await post('/v1/batch', { batch: [track()] }, basic('wk_not_a_key'));
    expect([missing.statusCode, unknown.statusCode]).toEqual([401, 401]);
    expect(missing.json().code).toBe('auth.unauthorized');
    // Credentials come before the body's shape, on every batch path.
    for (const path of ['/v1/batch', '/v1/import', '/v1/b', '/beacon/v1/batch']) {
      const shapeless = await post(path, {});
      const empty = await post(path, { batch: [] }, basic('wk_not_a_key'));
      expect([path, shapeless.statusCode, empty.statusCode]).toEqual([path, 401, 401]);
    }
  });

  it('refuses a request whose body key belongs to another application than its header key, or is no key', async () => {
    const before = [(await eventsOf(intake, 'shop')).length, (await eventsOf(intake, 'blog')).length];
    const response = await post('/v1/batch', { writeKey: blog.writeKey, batch: [track()] }, basic(shop.writeKey));
    expect(response.statusCode).toBe(403);
    // The query string (RudderStack's beacon) is held to the same rule, beside the header or the body.
    const beacon = `/beacon/v1/batch?writeKey=${encodeURIComponent(blog.writeKey)}`;
    const conflicting = await post(beacon, { batch: [track()] }, basic(shop.writeKey));
    expect(conflicting.statusCode).toBe(403);
    // The problem names where it happened without echoing the key (it would land in the client's logs).
    expect(conflicting.json().instance).toBe('/beacon/v1/batch?writeKey=%5Bredacted%5D');
    expect((await post(beacon, { writeKey: shop.writeKey, batch: [track()] })).statusCode).toBe(403);
    // A second key that is no key at all is a bad credential, not a mix of applications.
    const invalid = [
      await post(`/v1/batch?writeKey=${encodeURIComponent('wk_not_a_key')}`, { batch: [track()] }, basic(shop.writeKey)),
      await post('/v1/track', { ...track(), writeKey: 'wk_not_a_key' }, basic(shop.writeKey)),
    ];
    expect(invalid.map((r) => [r.statusCode, r.json().code])).toEqual([
      [401, 'auth.unauthorized'],
      [401, 'auth.unauthorized'],
    ]);
    expect(invalid[1]?.json().detail).toBe("the body's writeKey is not a valid write key");
    expect([(await eventsOf(intake, 'shop')).length, (await eventsOf(intake, 'blog')).length]).toEqual(before);
  });

  it('refuses broken gzip with 400 and a gzip bomb with 413', async () => {
    const broken = await post('/v1/batch', Buffer.from('not gzip at all'), { ...basic(shop.writeKey), 'content-encoding': 'gzip' });
    expect(broken.statusCode).toBe(400);
    expect(broken.json().code).toBe('request.bad-encoding');
    const bomb = gzipSync(Buffer.alloc(20 * 1024 * 1024, 0x20));
    expect(bomb.length).toBeLessThan(500 * 1024);
    const exploded = await post('/v1/batch', bomb, { ...basic(shop.writeKey), 'content-encoding': 'gzip' });
    expect(exploded.statusCode).toBe(413);
    // What is too large is what it decompresses to, not the body sent.
    expect(exploded.json().detail).toMatch(/decompresses to more than/);
  });

  it('refuses an empty batch with 400 and one over 500 KB with 413', async () => {
    const empty = await post('/v1/batch', { batch: [] }, basic(shop.writeKey));
    expect(empty.statusCode).toBe(400);
    expect(empty.json().code).toBe('analytics.empty-batch');
    const big = Array.from({ length: 20 }, () => track({ properties: { blob: 'x'.repeat(30 * 1024) } }));
    const tooBig = await post('/v1/batch', { batch: big }, basic(shop.writeKey));
    expect(tooBig.statusCode).toBe(413);
  });

  it('refuses with 413 a batch of more than 2,500 messages, and stores none of it', async () => {
    // 500 KB holds some 8,000 of the smallest messages; checking them held the event loop for 100-250 ms.
    const bulk = await createSource(intake, 'bulk');
    const batch = Array.from({ length: 2501 }, (_, i) => ({ type: 'track', event: 'e', userId: 'u', messageId: `many-${i}` }));
    const many = await post('/v1/batch', { batch }, basic(bulk.writeKey));
    expect(many.statusCode).toBe(413);
    expect(many.json()).toMatchObject({
      code: 'analytics.batch-too-large',
      detail: expect.stringMatching(/2501 messages, more than the 2500/),
    });
    expect(await eventsOf(intake, 'bulk')).toEqual([]);
    const most = await post('/v1/batch', { batch: batch.slice(0, 2500) }, basic(bulk.writeKey));
    expect(most.statusCode).toBe(200);
    expect(most.json().receipts.filter((r: { status: string }) => r.status === 'accepted')).toHaveLength(2500);
  });

  it('refuses with 413 a batch whose context would be stored again with each message, and stores none of it', async () => {
    // A 156 KB request of 2,000 messages under a 100 KB context would store 200 MB.
    const before = (await eventsOf(intake, 'blog')).length;
    const batch = Array.from({ length: 2000 }, (_, i) => ({ type: 'track', event: 'e', userId: `u${i}` }));
    const copied = await post('/v1/batch', { batch, context: { pad: 'x'.repeat(100 * 1024) } }, basic(blog.writeKey));
    expect(copied.statusCode).toBe(413);
    expect(copied.json()).toMatchObject({
      code: 'analytics.batch-too-large',
      detail: expect.stringMatching(/stored with each of the batch's 2000 messages/),
    });
    expect((await eventsOf(intake, 'blog')).length).toBe(before);
    // A library's context with a batch, as analytics-go sends it, is taken in by each message.
    const library = { library: { name: 'analytics-go', version: '3.3.0' } };
    const accepted = await post('/v1/batch', { batch: batch.slice(0, 200), context: library }, basic(blog.writeKey));
    expect(accepted.statusCode).toBe(200);
    expect((await eventsOf(intake, 'blog')).at(-1)?.payload.context).toMatchObject(library);
  });

  const nested = (depth: number): unknown => (depth === 0 ? 1 : [nested(depth - 1)]);
  it('rejects a message nested deeper than the JSON limit', () =>
    rejectedAlone(track({ properties: { deep: nested(100) } }), 'request.json-too-deep'));

  it('holds every message to the JSON limits: no number is rounded, no text stored broken', async () => {
    const before = (await eventsOf(intake, 'shop')).length;
    const good = track();
    const raw = `{"batch":[${JSON.stringify(track()).replace('"revenue":42', '"revenue":9007199254740993')},${JSON.stringify(good)}]}`;
    const batch = await post('/v1/batch', raw, basic(shop.writeKey));
    expect(batch.statusCode).toBe(200);
    expect(batch.json().receipts.map((r: { status: string; code?: string }) => [r.status, r.code])).toEqual([
      ['rejected', 'request.number-out-of-range'],
      ['accepted', undefined],
    ]);
    // Another message's float that is the same double as the rounded integer is no fault of its own.
    const sameDouble = `{"batch":[${JSON.stringify(track()).replace('"revenue":42', '"revenue":12345678901234567890')},${JSON.stringify(
      track(),
    ).replace('"revenue":42', '"revenue":1.2345678901234567e19')}]}`;
    const apart = await post('/v1/batch', sameDouble, basic(shop.writeKey));
    expect(apart.json().receipts.map((r: { status: string }) => r.status)).toEqual(['rejected', 'accepted']);
    const huge = gzipSync(JSON.stringify(track()).replace('"revenue":42', '"revenue":1e309'));
    const gzipped = await post('/v1/track', huge, { ...basic(shop.writeKey), 'content-encoding': 'gzip' });
    expect([gzipped.statusCode, gzipped.json().code]).toEqual([400, 'request.number-out-of-range']);
    const surrogate = JSON.stringify(track({ event: 'X' })).replace('"event":"X"', '"event":"\\ud800"');
    const beacon = await post('/v1/track', surrogate, { ...basic(shop.writeKey), 'content-type': 'text/plain' });
    expect([beacon.statusCode, beacon.json().code]).toEqual([400, 'request.invalid-unicode']);
    const latin1 = gzipSync(Buffer.from(JSON.stringify(track({ event: 'Caf\u00e9' })), 'latin1'));
    const notUtf8 = await post('/v1/track', latin1, { ...basic(shop.writeKey), 'content-encoding': 'gzip' });
    expect([notUtf8.statusCode, notUtf8.json().code]).toEqual([400, 'request.invalid-unicode']);
    expect((await eventsOf(intake, 'shop')).length).toBe(before + 2);
  });

  it('names each message refused at the JSON edge by its messageId (a number as text), unless that id is itself broken text', async () => {
    const unsafe = JSON.stringify(track({ messageId: 'unsafe-number' })).replace('"revenue":42', '"revenue":9007199254740993');
    const brokenText = JSON.stringify(track({ messageId: 'broken-text', event: 'X' })).replace('"event":"X"', '"event":"\\ud800"');
    const brokenId = JSON.stringify(track({ messageId: 'X', event: 'Y' })).replace('"messageId":"X"', '"messageId":"id-\\udc00"');
    const deepNumericId = JSON.stringify({ ...track(), messageId: 7, properties: { deep: nested(100) } });
    const good = track();
    const raw = `{"batch":[${unsafe},${brokenText},${brokenId},${deepNumericId},${JSON.stringify(good)}]}`;
    const response = await post('/v1/batch', raw, basic(shop.writeKey));
    expect(response.statusCode).toBe(200);
    expect(response.json().receipts).toEqual([
      expect.objectContaining({ index: 0, status: 'rejected', code: 'request.number-out-of-range', messageId: 'unsafe-number' }),
      expect.objectContaining({ index: 1, status: 'rejected', code: 'request.invalid-unicode', messageId: 'broken-text' }),
      expect.not.objectContaining({ messageId: expect.anything() }),
      expect.objectContaining({ index: 3, status: 'rejected', code: 'request.json-too-deep', messageId: '7' }),
      expect.objectContaining({ index: 4, status: 'accepted', messageId: good.messageId }),
    ]);
    expect(response.json().receipts[2]).toMatchObject({ index: 2, status: 'rejected', code: 'request.invalid-unicode' });
  });

  it('rejects a message with a __proto__ key alone', () =>
    rejectedAlone(
      JSON.parse('{"type":"identify","userId":"u-p","messageId":"with-proto","__proto__":{"polluted":1}}') as Record<string, unknown>,
      'request.forbidden-key',
    ));

  it('refuses a __proto__ key, leaving every object as it was', async () => {
    const raw = '{"type":"identify","userId":"u-proto","__proto__":{"polluted":1},"traits":{"a":1}}';
    const response = await post('/v1/identify', raw, basic(shop.writeKey));
    expect([response.statusCode, response.json().code]).toEqual([400, 'request.forbidden-key']);
    expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses malformed JSON', async () => {
    const response = await post('/v1/batch', '{"batch": [', basic(shop.writeKey));
    expect(response.statusCode).toBe(400);
    expect(response.json().code).toBe('request.malformed-json');
  });
});

describe('the tracking API behind a proxy', () => {
  const behind = async (trustProxy: string, check: (proxied: TestIntake, writeKey: string) => Promise<void>) => {
    const proxied = await startTestIntake({ TRUST_PROXY: trustProxy }, { clock, startSubscribers: false });
    try {
      await check(proxied, (await createSource(proxied, 'shop')).writeKey);
    } finally {
      await proxied.dispose();
    }
  };
  const sendVia = (proxied: TestIntake, writeKey: string, forwardedFor: string) =>
    proxied.app.inject({
      method: 'POST',
      url: '/v1/track',
      remoteAddress: '127.0.0.1',
      headers: { ...basic(writeKey), 'content-type': 'application/json', 'x-forwarded-for': forwardedFor },
      payload: JSON.stringify(track({ context: { library: { name: 'analytics-node' } } })),
    });

  it('takes the address the proxy appended (TRUST_PROXY=true is one proxy), not the one the client wrote first', () =>
    behind('true', async (proxied, writeKey) => {
      expect((await sendVia(proxied, writeKey, '198.51.100.66, 203.0.113.9')).statusCode).toBe(200);
      expect((await eventsOf(proxied, 'shop')).at(-1)?.payload.context).toMatchObject({ ip: '203.0.113.9' });
      const settings = await proxied.app.inject({
        method: 'GET',
        url: `/v1/projects/${writeKey}/settings`,
        remoteAddress: '127.0.0.1',
        headers: { host: 'intake-upstream:8080', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'cdn.example' },
      });
      // The browser is sent to the host it asked for, not to the proxy's upstream.
      expect(settings.json().integrations['Segment.io']).toMatchObject({ apiHost: 'cdn.example/v1', protocol: 'https' });
    }));

  it('believes as many hops as TRUST_PROXY names', () =>
    behind('2', async (proxied, writeKey) => {
      expect((await sendVia(proxied, writeKey, '198.51.100.66, 203.0.113.9, 10.0.0.2')).statusCode).toBe(200);
      expect((await eventsOf(proxied, 'shop')).at(-1)?.payload.context).toMatchObject({ ip: '203.0.113.9' });
    }));
});
