import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { digestOf } from '../../shared/secrets.js';
import { buildHttpServer, type ReadinessCheck } from './server.js';

const serverWith = (readiness: ReadinessCheck, saturation?: () => string | undefined) =>
  buildHttpServer({
    ...(saturation ? { saturation } : {}),
    logger: pino({ level: 'silent' }),
    version: 'test',
    bodyLimitBytes: 4096,
    adminDigest: digestOf('token'),
    readiness,
    readinessDeadlineMs: 100,
    contexts: [],
  });

describe('readiness', () => {
  it('answers not ready, in time, when its checks hang (a stalled storage thread)', async () => {
    const app = await serverWith(() => new Promise(() => undefined));
    const response = await app.inject({ url: '/health/ready' });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toMatchObject({ status: 'not_ready', checks: { readiness: { status: 'down' } } });
    expect(response.json().checks.readiness.detail).toMatch(/did not answer within 100 ms/);
    await app.close();
  });

  it('answers not ready with the reason when a check fails (it answered a 500 that fit no readiness body)', async () => {
    const app = await serverWith(() => Promise.reject(new Error('the storage thread has 8 requests in hand; retry shortly')));
    const response = await app.inject({ url: '/health/ready' });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toMatchObject({
      status: 'not_ready',
      checks: { readiness: { status: 'down', detail: expect.stringMatching(/8 requests in hand/) } },
    });
    await app.close();
  });

  it('answers ready but degraded when its checks are late behind a load that storage is still working through', async () => {
    const app = await serverWith(
      () => new Promise(() => undefined),
      () => 'the storage thread has 900 requests in hand and answered one 3 ms ago',
    );
    const response = await app.inject({ url: '/health/ready' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ status: 'ready', checks: { readiness: { status: 'degraded' } } });
    expect(response.json().checks.readiness.detail).toMatch(/queued behind the load: the storage thread has 900 requests/);
    await app.close();
  });

  it('answers with the checks when they come in time', async () => {
    const app = await serverWith(async () => ({ database: { status: 'ok', detail: 'fine' } }));
    const response = await app.inject({ url: '/health/ready' });
    expect([response.statusCode, response.json().status]).toEqual([200, 'ready']);
    await app.close();
  });
});
