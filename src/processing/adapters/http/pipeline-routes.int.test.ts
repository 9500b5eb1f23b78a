import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, type TestIntake } from '../../../../test/support/embedded-intake.js';
import { backends, everyPage, expectCursorRefused, MALFORMED_CURSORS, startIntakeOn } from '../../../../test/support/paging.js';

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

    const { items, pages } = await everyPage<{ event_type: string }>(intake, '/api/pipelines', 3);
    expect(items.map((p) => p.event_type)).toEqual([...eventTypes].sort());
    expect(pages).toBe(3);
    await expectCursorRefused(intake, '/api/pipelines', MALFORMED_CURSORS);
  });
});
