import { afterEach, expect, it } from 'vitest';
import { fixedClock } from '../../src/shared/clock.js';
import { adminJson, auth, ingestItem, startStatisticsIntake, type StatisticsIntake } from '../support/intake-with-statistics.js';

let intake: StatisticsIntake | undefined;
afterEach(async () => {
  await intake?.dispose();
  intake = undefined;
});

it('processes each item with the pipeline in force when it arrived, however late processing reaches it', async () => {
  const clock = fixedClock('2026-12-06T10:00:00.000Z');
  // Processing is held back until every item and change is in: it then reaches all of them after the last change.
  const running = (intake = await startStatisticsIntake({ clock, running: ['validation', 'query', 'item-status'] }));
  const configure = async (steps: object[] | undefined) => {
    const response = await running.app.inject({
      method: steps ? 'PUT' : 'DELETE',
      url: '/api/pipelines/signup',
      headers: adminJson,
      ...(steps ? { payload: { steps } } : {}),
    });
    expect(response.statusCode, response.body).toBe(steps ? 200 : 204);
  };
  const payload = { keep: ' Ada@Example.COM ', drop: 'x' };
  const beforeAny = await ingestItem(running, 'p', 'signup', payload);
  clock.advance(1000);
  await configure([{ processor: 'project', fields: ['keep'] }]);
  clock.advance(1000);
  const underProject = await ingestItem(running, 'p', 'signup', payload);
  clock.advance(1000);
  await configure([{ processor: 'project', fields: ['drop'] }]);
  clock.advance(1000);
  const underSecond = await ingestItem(running, 'p', 'signup', payload);
  clock.advance(1000);
  await configure(undefined);
  clock.advance(1000);
  const afterReset = await ingestItem(running, 'p', 'signup', payload);

  await running.runOnce(['processing']);
  await running.subscriptions.caughtUp();
  const result = async (id: string) => (await running.app.inject({ url: `/query/${id}`, headers: auth })).json().processing?.result;
  const normalized = { keep: 'ada@example.com', drop: 'x' };
  expect(await result(beforeAny)).toEqual(normalized);
  expect(await result(underProject)).toEqual({ keep: ' Ada@Example.COM ' });
  expect(await result(underSecond)).toEqual({ drop: 'x' });
  expect(await result(afterReset)).toEqual(normalized);
});
