import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, type TestIntake } from '../../../../test/support/embedded-intake.js';
import { backends, everyPage, expectCursorRefused, MALFORMED_CURSORS, startIntakeOn } from '../../../../test/support/paging.js';
import { MAX_PAGE_BYTES } from '../../../shared/pagination.js';

describe.each(backends)('GET /api/pipelines on %s', (backend) => {
  let intake: TestIntake;
  beforeAll(async () => {
    intake = await startIntakeOn(backend);
  });
  afterAll(() => intake.dispose());

  it('walks the configured pipelines by event type, each once', async () => {
    const eventTypes = ['order', 'signup', 'click', 'refund', 'view', 'cart', 'login'];
    for (const eventType of [...eventTypes, 'reset_me']) {
      const response = await intake.app.inject({
        method: 'PUT',
        url: `/api/pipelines/${eventType}`,
        headers: auth,
        payload: { steps: [{ processor: 'normalize' }] },
      });
      expect(response.statusCode, response.body).toBe(200);
    }
    expect((await intake.app.inject({ method: 'DELETE', url: '/api/pipelines/reset_me', headers: auth })).statusCode).toBe(204);
    // Back to the default, or never configured: nothing of its own to delete, as a schema's delete answers.
    for (const eventType of ['reset_me', 'never_configured']) {
      const again = await intake.app.inject({ method: 'DELETE', url: `/api/pipelines/${eventType}`, headers: auth });
      expect([again.statusCode, again.json().code], eventType).toEqual([404, 'processing.pipeline-not-found']);
    }

    const { items, pages } = await everyPage<{ event_type: string }>(intake, '/api/pipelines', 3);
    expect(items.map((p) => p.event_type)).toEqual([...eventTypes].sort());
    expect(pages).toBe(3);
    await expectCursorRefused(intake, '/api/pipelines', MALFORMED_CURSORS);
  });

  it(`stops a page before the pipeline that would take it past ${MAX_PAGE_BYTES / (1024 * 1024)} MB, whatever the limit`, async () => {
    // The largest pipelines: 20 steps keeping 100 paths of about 250 characters, 500 KB; ten weigh more than a page may.
    const fields = Array.from({ length: 100 }, (_, i) => `f${String(i).padStart(2, '0')}.${'x'.repeat(246)}`);
    const steps = Array.from({ length: 20 }, () => ({ processor: 'project', fields }));
    const types = Array.from({ length: 10 }, (_, i) => `heavy${i}`);
    for (const eventType of types) {
      const response = await intake.app.inject({
        method: 'PUT',
        url: `/api/pipelines/${eventType}`,
        headers: auth,
        payload: { steps },
      });
      expect(response.statusCode, response.body).toBe(200);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const url: string = `/api/pipelines?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const response = await intake.app.inject({ method: 'GET', url, headers: auth });
      expect(response.statusCode).toBe(200);
      expect(response.body.length).toBeLessThan(MAX_PAGE_BYTES + 1024 * 1024);
      const page = response.json() as {
        items: Array<{ event_type: string; steps: Array<{ fields?: string[] }> }>;
        next_cursor: string | null;
      };
      seen.push(...page.items.map((pipeline) => pipeline.event_type));
      for (const pipeline of page.items.filter((p) => p.event_type.startsWith('heavy'))) expect(pipeline.steps).toEqual(steps);
      cursor = page.next_cursor;
      pages++;
    } while (cursor);
    expect(seen.filter((type) => type.startsWith('heavy'))).toEqual(types);
    expect(pages).toBe(2);
  });
});

describe('PUT /api/pipelines/{event_type}', () => {
  let intake: TestIntake;
  beforeAll(async () => {
    intake = await startIntakeOn('SQLite');
  });
  afterAll(() => intake.dispose());

  it('refuses fields on a normalize step, which it would have ignored', async () => {
    const put = (steps: object[]) => intake.app.inject({ method: 'PUT', url: '/api/pipelines/signup', headers: auth, payload: { steps } });
    const refused = await put([{ processor: 'normalize', fields: ['email'] }]);
    expect([refused.statusCode, refused.json().code, refused.json().errors]).toEqual([
      400,
      'processing.invalid-pipeline',
      [{ path: 'steps.0.fields', message: expect.stringMatching(/normalize takes no fields/) }],
    ]);
    expect((await intake.app.inject({ url: '/api/pipelines/signup', headers: auth })).json().configured_at).toBeNull();
    expect((await put([{ processor: 'normalize' }, { processor: 'project', fields: ['email'] }])).statusCode).toBe(200);
  });
});
