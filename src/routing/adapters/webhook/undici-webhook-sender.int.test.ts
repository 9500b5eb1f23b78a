import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fixedClock } from '../../../shared/clock.js';
import type { DeliveryRequest, WebhookSender, WebhookTarget } from '../../application/destination.js';
import { assertPublicUrl } from './assert-public-url.js';
import { newSigningSecret } from './standard-webhooks.js';
import { undiciWebhookSender } from './undici-webhook-sender.js';

interface ReceivedRequest {
  readonly method: string | undefined;
  readonly url: string | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly remotePort: number | undefined;
}

/** A real HTTP receiver on a free loopback port; each test says how it answers. */
async function startReceiver() {
  const received: ReceivedRequest[] = [];
  let answer: (response: ServerResponse, request: IncomingMessage) => void = (response) => response.writeHead(204).end();
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({
        method: request.method,
        url: request.url,
        headers: request.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        remotePort: request.socket.remotePort,
      });
      answer(response, request);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `http://127.0.0.1:${port}/hooks/intake`,
    received,
    answerWith(next: typeof answer) {
      answer = next;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const delivery = (overrides: Partial<DeliveryRequest> = {}): DeliveryRequest => ({
  deliveryId: 'dlv_01J0000000000000000000000',
  attempt: 1,
  body: JSON.stringify({ event_type: 'order.paid', payload: { total: 42, note: 'é ✓' } }),
  eventId: 'evt_1',
  appId: 'app_1',
  eventType: 'order.paid',
  ...overrides,
});

describe('undiciWebhookSender', () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  const secret = newSigningSecret();
  const senders: WebhookSender[] = [];
  const target = (overrides: Partial<WebhookTarget> = {}): WebhookTarget => ({ url: receiver.url, signingSecret: secret, ...overrides });
  const sender = (options: Parameters<typeof undiciWebhookSender>[0] = {}) => {
    const created = undiciWebhookSender({ allowedHosts: ['127.0.0.0/8'], ...options });
    senders.push(created);
    return created;
  };

  beforeAll(async () => {
    receiver = await startReceiver();
  });
  afterEach(async () => {
    await Promise.all(senders.splice(0).map((created) => created.close()));
    receiver.received.length = 0;
    receiver.answerWith((response) => response.writeHead(204).end());
  });
  afterAll(async () => {
    await receiver.close();
  });

  it('POSTs the body as JSON, signed so that a Standard Webhooks verifier accepts it', async () => {
    const outcome = await sender().send(target({ headers: { Authorization: 'Bearer abc', 'X-Team': 'growth' } }), delivery());

    expect(outcome).toMatchObject({ outcome: 'delivered', statusCode: 204 });
    const [request] = receiver.received;
    expect(request).toMatchObject({ method: 'POST', url: '/hooks/intake', body: delivery().body });
    expect(request?.headers).toMatchObject({
      'content-type': 'application/json',
      'user-agent': 'Intake-Webhooks/1',
      'webhook-id': delivery().deliveryId,
      authorization: 'Bearer abc',
      'x-team': 'growth',
    });
    const verified = new Webhook(secret).verify(request?.body ?? '', {
      'webhook-id': String(request?.headers['webhook-id']),
      'webhook-timestamp': String(request?.headers['webhook-timestamp']),
      'webhook-signature': String(request?.headers['webhook-signature']),
    });
    expect(verified).toEqual(JSON.parse(delivery().body));
  });

  it('signs with the current and the previous secret during a rotation, the current first', async () => {
    const previous = newSigningSecret();
    expect(await sender().send(target({ previousSigningSecret: previous }), delivery())).toMatchObject({ outcome: 'delivered' });
    const [request] = receiver.received;
    const headers = {
      'webhook-id': String(request?.headers['webhook-id']),
      'webhook-timestamp': String(request?.headers['webhook-timestamp']),
      'webhook-signature': String(request?.headers['webhook-signature']),
    };
    const [current, old] = headers['webhook-signature'].split(' ');
    // A receiver holding either secret verifies the message.
    for (const [key, signature] of [
      [secret, current],
      [previous, old],
    ] as const) {
      expect(() => new Webhook(key).verify(request?.body ?? '', { ...headers, 'webhook-signature': signature ?? '' })).not.toThrow();
    }
  });

  it('stamps the injected time and never lets target headers replace the signed ones', async () => {
    const clock = fixedClock('2025-03-01T10:00:00Z');
    const outcome = await sender({ clock }).send(
      target({
        headers: { 'Webhook-Id': 'forged', 'webhook-timestamp': '1', 'webhook-signature': 'v1,forged', 'Content-Type': 'text/plain' },
      }),
      delivery(),
    );

    expect(outcome.outcome).toBe('delivered');
    const headers = receiver.received[0]?.headers;
    expect(headers?.['webhook-id']).toBe(delivery().deliveryId);
    expect(headers?.['webhook-timestamp']).toBe(String(Date.parse('2025-03-01T10:00:00Z') / 1000));
    expect(headers?.['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(headers?.['content-type']).toBe('application/json');
  });

  it('keeps the same webhook-id on every attempt of a delivery', async () => {
    const clock = fixedClock('2025-03-01T10:00:00Z');
    const webhooks = sender({ clock });
    receiver.answerWith((response) => response.writeHead(503).end());

    const first = await webhooks.send(target(), delivery({ attempt: 1 }));
    clock.advance(30_000);
    receiver.answerWith((response) => response.writeHead(200).end('ok'));
    const second = await webhooks.send(target(), delivery({ attempt: 2 }));

    expect([first.outcome, second.outcome]).toEqual(['retry', 'delivered']);
    const [firstRequest, secondRequest] = receiver.received;
    expect(secondRequest?.headers['webhook-id']).toBe(firstRequest?.headers['webhook-id']);
    expect(secondRequest?.headers['webhook-timestamp']).not.toBe(firstRequest?.headers['webhook-timestamp']);
  });

  it('reuses its connections', async () => {
    const webhooks = sender();

    for (let attempt = 1; attempt <= 6; attempt++) await webhooks.send(target(), delivery({ attempt }));

    // undici may open a second connection while the first is being released, but no more.
    expect(new Set(receiver.received.map((request) => request.remotePort)).size).toBeLessThanOrEqual(2);
  });

  it.each([500, 502, 503, 408, 425])('answers retry to HTTP %i', async (status) => {
    receiver.answerWith((response) => response.writeHead(status).end('upstream trouble'));

    expect(await sender().send(target(), delivery())).toMatchObject({ outcome: 'retry', statusCode: status, reason: `HTTP ${status}` });
  });

  it('answers retry after the delay a 429 asks for, in seconds or as a date', async () => {
    const clock = fixedClock('2025-03-01T10:00:00Z');
    receiver.answerWith((response) => response.writeHead(429, { 'retry-after': '7' }).end());
    expect(await sender({ clock }).send(target(), delivery())).toMatchObject({ outcome: 'retry', statusCode: 429, retryAfterMs: 7000 });

    receiver.answerWith((response) => response.writeHead(429, { 'retry-after': 'Sat, 01 Mar 2025 10:01:00 GMT' }).end());
    expect(await sender({ clock }).send(target(), delivery())).toMatchObject({ outcome: 'retry', retryAfterMs: 60_000 });

    receiver.answerWith((response) => response.writeHead(429).end());
    const withoutHeader = await sender({ clock }).send(target(), delivery());
    expect(withoutHeader).toMatchObject({ outcome: 'retry', statusCode: 429 });
    expect(withoutHeader).not.toHaveProperty('retryAfterMs');
  });

  it('answers retry after the delay a 503 asks for, as a 429', async () => {
    const clock = fixedClock('2025-03-01T10:00:00Z');
    receiver.answerWith((response) => response.writeHead(503, { 'retry-after': '120' }).end());
    expect(await sender({ clock }).send(target(), delivery())).toMatchObject({ outcome: 'retry', statusCode: 503, retryAfterMs: 120_000 });

    receiver.answerWith((response) => response.writeHead(503).end());
    expect(await sender({ clock }).send(target(), delivery())).not.toHaveProperty('retryAfterMs');
  });

  it('answers gone to HTTP 410', async () => {
    receiver.answerWith((response) => response.writeHead(410).end());

    expect(await sender().send(target(), delivery())).toMatchObject({ outcome: 'gone', statusCode: 410 });
  });

  it.each([400, 401, 404, 422])('answers rejected to HTTP %i', async (status) => {
    receiver.answerWith((response) => response.writeHead(status).end('{"error":"no"}'));

    expect(await sender().send(target(), delivery())).toMatchObject({ outcome: 'rejected', statusCode: status });
  });

  it('does not follow redirects', async () => {
    receiver.answerWith((response) => response.writeHead(302, { location: '/elsewhere' }).end());

    expect(await sender().send(target(), delivery())).toMatchObject({ outcome: 'rejected', statusCode: 302 });
    expect(receiver.received).toHaveLength(1);
  });

  it('answers retry when the receiver does not answer in time', async () => {
    receiver.answerWith(() => undefined);

    const outcome = await sender({ timeoutMs: 300 }).send(target(), delivery());

    expect(outcome).toMatchObject({ outcome: 'retry', reason: 'timed out after 300 ms' });
    expect(outcome.durationMs).toBeGreaterThanOrEqual(250);
    expect(outcome.durationMs).toBeLessThan(2000);
  });

  it('decides on the status: a 200 whose body never ends is delivered, after a short wait for the body', async () => {
    receiver.answerWith((response) => response.writeHead(200, { 'content-type': 'text/plain' }).write('partial'));

    const outcome = await sender({ timeoutMs: 5000, bodyTimeoutMs: 200 }).send(target(), delivery());

    expect(outcome).toMatchObject({ outcome: 'delivered', statusCode: 200 });
    expect(outcome.durationMs).toBeLessThan(2000);
  });

  it('decides on the status: a 503 whose body never ends is a retry', async () => {
    receiver.answerWith((response) => response.writeHead(503, { 'content-type': 'text/plain' }).write('partial'));

    expect(await sender({ timeoutMs: 5000, bodyTimeoutMs: 200 }).send(target(), delivery())).toMatchObject({
      outcome: 'retry',
      statusCode: 503,
    });
  });

  it('reads only the start of a huge answer: 10 MB of garbage that never ends is delivered quickly', async () => {
    receiver.answerWith((response) => {
      response.writeHead(200, { 'content-type': 'application/octet-stream' });
      // 10 MB, then the stream stays open: a sender reading it all would wait for its timeout.
      const chunk = Buffer.alloc(64 * 1024, 0xa7);
      let written = 0;
      const writeMore = () => {
        while (written < 10 * 1024 * 1024) {
          written += chunk.length;
          if (!response.write(chunk)) return void response.once('drain', writeMore);
        }
      };
      writeMore();
    });

    const outcome = await sender({ timeoutMs: 5000 }).send(target(), delivery());

    expect(outcome).toMatchObject({ outcome: 'delivered', statusCode: 200 });
    expect(outcome.durationMs).toBeLessThan(2000);
  });

  it('reads only the start of an answer announcing a huge length', async () => {
    receiver.answerWith((response) => {
      response.writeHead(200, { 'content-length': String(20 * 1024 * 1024) });
      response.write(Buffer.alloc(1024 * 1024, 0x41));
    });

    const outcome = await sender({ timeoutMs: 5000 }).send(target(), delivery());

    expect(outcome).toMatchObject({ outcome: 'delivered', statusCode: 200 });
    expect(outcome.durationMs).toBeLessThan(2000);
  });

  it('answers retry when the connection is refused', async () => {
    const port = await freePort();

    const outcome = await sender().send(target({ url: `http://127.0.0.1:${port}/` }), delivery());

    expect(outcome).toMatchObject({ outcome: 'retry' });
    expect(outcome.outcome === 'retry' && outcome.reason).toContain('ECONNREFUSED');
  });

  it('answers retry when the receiver drops the connection', async () => {
    receiver.answerWith((_response, request) => request.socket.destroy());

    expect(await sender().send(target(), delivery())).toMatchObject({ outcome: 'retry' });
  });

  describe('refusing non-public destinations at connection time', () => {
    it('rejects a loopback IP unless allowed, without sending anything', async () => {
      const outcome = await sender({ allowedHosts: [] }).send(target(), delivery());

      expect(outcome).toMatchObject({ outcome: 'rejected' });
      expect(outcome.outcome === 'rejected' && outcome.reason).toContain('127.0.0.1');
      expect(receiver.received).toHaveLength(0);
    });

    it('rejects an IPv4-mapped IPv6 literal of loopback', async () => {
      const outcome = await sender({ allowedHosts: [] }).send(target({ url: `http://[::ffff:127.0.0.1]:${receiver.port}/` }), delivery());

      expect(outcome).toMatchObject({ outcome: 'rejected' });
      expect(receiver.received).toHaveLength(0);
    });

    it('rejects localhost, which resolves to loopback, unless allowed', async () => {
      const url = `http://localhost:${receiver.port}/hooks`;

      const refused = await sender({ allowedHosts: [] }).send(target({ url }), delivery());
      expect(refused).toMatchObject({ outcome: 'rejected' });
      expect(refused.outcome === 'rejected' && refused.reason).toMatch(
        /127\.0\.0\.1 \(resolved from localhost\)|::1 \(resolved from localhost\)/,
      );
      expect(receiver.received).toHaveLength(0);

      expect(await sender({ allowedHosts: ['localhost'] }).send(target({ url }), delivery())).toMatchObject({ outcome: 'delivered' });
    });

    it('checks what a public-looking name resolves to when connecting (DNS rebinding)', async () => {
      const url = `http://hooks.example.com:${receiver.port}/hooks`;
      expect(() => assertPublicUrl(url)).not.toThrow(); // the text is fine at save time...
      // ...but by send time the name answers with a private address.
      const rebound = async () => [{ address: '127.0.0.1', family: 4 }];

      const refused = await sender({ allowedHosts: [], resolve: rebound }).send(target({ url }), delivery());
      expect(refused).toMatchObject({ outcome: 'rejected' });
      expect(refused.outcome === 'rejected' && refused.reason).toContain('127.0.0.1 (resolved from hooks.example.com)');

      const mixed = async () => [
        { address: '93.184.215.14', family: 4 },
        { address: '10.0.0.8', family: 4 },
      ];
      const refusedMixed = await sender({ allowedHosts: [], resolve: mixed }).send(target({ url }), delivery());
      expect(refusedMixed.outcome === 'rejected' && refusedMixed.reason).toContain('10.0.0.8');

      expect(await sender({ resolve: rebound }).send(target({ url }), delivery())).toMatchObject({ outcome: 'delivered' });
      expect(receiver.received).toHaveLength(1);
      expect(receiver.received[0]?.headers.host).toBe(`hooks.example.com:${receiver.port}`);
    });

    it('answers retry when the name does not resolve', async () => {
      const notFound = async () => {
        throw Object.assign(new Error('getaddrinfo ENOTFOUND hooks.example.com'), { code: 'ENOTFOUND' });
      };

      const outcome = await sender({ resolve: notFound }).send(target({ url: 'https://hooks.example.com/x' }), delivery());

      expect(outcome).toMatchObject({ outcome: 'retry' });
      expect(outcome.outcome === 'retry' && outcome.reason).toContain('ENOTFOUND');
    });
  });

  it('rejects a target it can never call', async () => {
    expect(await sender().send(target({ url: 'ftp://127.0.0.1/' }), delivery())).toMatchObject({ outcome: 'rejected' });
    expect(await sender().send(target({ url: 'not a url' }), delivery())).toMatchObject({ outcome: 'rejected' });
    expect(await sender().send(target({ signingSecret: 'plain' }), delivery())).toMatchObject({ outcome: 'rejected' });
    expect(await sender().send(target({ headers: { 'x-bad': 'a\r\nb' } }), delivery())).toMatchObject({ outcome: 'rejected' });
  });
});
