import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { registerHttpMetrics } from './http-metrics.js';
import { createMetrics } from './metrics.js';
import { ProblemSchema } from '../../shared/http/schemas.js';

describe('GET /metrics under many scrapers', () => {
  it('makes one scrape for the requests that ask while it is being made', async () => {
    let asked = 0;
    const metrics = {
      ...createMetrics({ processMetrics: false }),
      // The storage thread's part, slow to come: every request in the meantime waits on the same one.
      elsewhere: async () => {
        asked += 1;
        await new Promise((resolve) => setTimeout(resolve, 50));
        return [];
      },
    };
    const app = Fastify().addSchema(ProblemSchema);
    registerHttpMetrics(app, metrics);
    try {
      const answers = await Promise.all(Array.from({ length: 20 }, () => app.inject({ method: 'GET', url: '/metrics' })));
      expect(answers.map((a) => a.statusCode)).toEqual(Array(20).fill(200));
      expect(asked).toBe(1);
      await app.inject({ method: 'GET', url: '/metrics' });
      expect(asked).toBe(2);
    } finally {
      await app.close();
    }
  });

  it("serves this thread's metrics when the other thread's part cannot be had (its thread refusing work)", async () => {
    const metrics = {
      ...createMetrics({ processMetrics: false }),
      elsewhere: () => Promise.reject(new Error('the storage thread has 8 requests in hand')),
    };
    const app = Fastify().addSchema(ProblemSchema);
    registerHttpMetrics(app, metrics);
    try {
      const answer = await app.inject({ method: 'GET', url: '/metrics' });
      expect(answer.statusCode).toBe(200);
      expect(answer.body).toMatch(/^# HELP /m);
    } finally {
      await app.close();
    }
  });
});
