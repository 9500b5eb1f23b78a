import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { NotFoundError, ValidationError } from '../../shared/errors.js';
import { OverloadedError } from '../../shared/event-store/event-store.js';
import { digestOf } from '../../shared/secrets.js';
import { buildHttpServer } from './server.js';

interface Line {
  level: number;
  msg: string;
  counts?: Record<string, number>;
  total?: number;
  err?: { stack?: string };
  correlation_id?: string;
}

/** An HTTP server whose routes fail on purpose, logging into an array. */
async function failingServer() {
  const lines: Line[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const text of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(text) as Line);
      callback();
    },
  });
  const app = await buildHttpServer({
    logger: pino({ level: 'info' }, stream),
    version: 'test',
    bodyLimitBytes: 4096,
    adminDigest: digestOf('token'),
    readiness: async () => ({}),
    contexts: [
      {
        routes: async (scope) => {
          scope.get('/overloaded', async () => {
            throw new OverloadedError(10_000);
          });
          scope.get('/invalid', async () => {
            throw new ValidationError('test.invalid', 'x is wrong', [{ path: 'x', message: 'is wrong' }]);
          });
          scope.get('/missing', async () => {
            throw new NotFoundError('test.missing', 'no such thing');
          });
          scope.get('/bug', async () => {
            throw new TypeError('a bug');
          });
        },
      },
    ],
  });
  return { app, lines };
}

const headers = { authorization: 'Bearer token' };
let close: (() => Promise<unknown>) | undefined;
afterEach(async () => close?.());

describe('logging of error answers', () => {
  it('summarises expected errors (4xx and overload) in one line with counts by code, without stacks', async () => {
    const { app, lines } = await failingServer();
    close = () => app.close();
    const responses = await Promise.all([
      ...Array.from({ length: 50 }, () => app.inject({ url: '/overloaded', headers })),
      ...Array.from({ length: 20 }, () => app.inject({ url: '/invalid', headers })),
      app.inject({ url: '/missing', headers }),
      app.inject({ url: '/nowhere', headers }),
      app.inject({ url: '/invalid' }),
    ]);
    expect(responses.filter((r) => r.statusCode === 503)).toHaveLength(50);
    expect(responses[0]?.headers['retry-after']).toBe('1');
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);

    await app.close(); // flushes what is pending, as the one-second timer would
    const summaries = lines.filter((l) => l.counts !== undefined);
    expect(summaries).toHaveLength(1);
    expect(summaries[0]).toMatchObject({
      level: 40,
      total: 73,
      counts: {
        '503 event-store.overloaded': 50,
        '400 test.invalid': 20,
        '404 test.missing': 1,
        '404 route.not-found': 1,
        '401 auth.unauthorized': 1,
      },
    });
    expect(lines.some((l) => l.err !== undefined)).toBe(false);
  });

  it('writes at most one summary line a second', async () => {
    const { app, lines } = await failingServer();
    close = () => app.close();
    for (let round = 0; round < 3; round++) {
      await Promise.all(Array.from({ length: 10 }, () => app.inject({ url: '/invalid', headers })));
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    const before = lines.filter((l) => l.counts !== undefined).length;
    expect(before).toBeLessThanOrEqual(1);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const summaries = lines.filter((l) => l.counts !== undefined);
    expect(summaries.length).toBeGreaterThanOrEqual(1);
    expect(summaries.length).toBeLessThanOrEqual(2);
    expect(summaries.reduce((sum, l) => sum + (l.total ?? 0), 0)).toBe(30);
  });

  it('still logs an unknown error with its stack and the request id', async () => {
    const { app, lines } = await failingServer();
    close = () => app.close();
    const response = await app.inject({ url: '/bug', headers: { ...headers, 'x-correlation-id': 'req-77' } });
    expect(response.statusCode).toBe(500);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    const logged = lines.find((l) => l.level === 50);
    expect(logged).toMatchObject({ msg: 'request failed', correlation_id: 'req-77' });
    expect(logged?.err?.stack).toContain('a bug');
  });
});
