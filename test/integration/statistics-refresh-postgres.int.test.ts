import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/shared/clock.js';
import { testPostgresUrl } from '../../src/shared/postgres/temporary-schema.js';
import { sqlStatisticsTables } from '../../src/statistics/adapters/sql/sql-statistics-tables.js';
import type { StatisticsTablesFor } from '../../src/statistics/application/ports.js';
import { refreshStatistics } from '../../src/statistics/application/refresh-statistics.js';
import { auth, type TestIntake } from '../support/embedded-intake.js';
import { startIntakeOn } from '../support/paging.js';

describe.skipIf(!testPostgresUrl)('a statistics refresh on PostgreSQL beside the live subscriber', () => {
  let intake: TestIntake;
  beforeAll(async () => {
    intake = await startIntakeOn('PostgreSQL');
  }, 60_000);
  afterAll(() => intake.dispose());

  const ingest = (n: number) =>
    intake.app.inject({ method: 'POST', url: '/api/ingest/race', headers: auth, payload: { event_type: 'visit', payload: { n } } });
  const total = async () => {
    const response = await intake.app.inject({ method: 'GET', url: '/api/statistics/dashboard/race?time_period=daily', headers: auth });
    return (response.json() as { totals: { total_events: number } }).totals.total_events;
  };
  const until = async (done: () => Promise<boolean>, ms: number) => {
    for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) if (await done()) return true;
    return false;
  };

  it('never loses the counts of a subscriber batch that commits while the refresh writes (they were deleted with the buckets)', async () => {
    for (let n = 0; n < 5; n++) expect((await ingest(n)).statusCode).toBe(201);
    expect(await until(async () => (await total()) === 5, 10_000)).toBe(true);

    // Once the refresh has read what the subscriber changed after its log position, an item arrives and
    // the subscriber is given the time to count it before the refresh writes, as a busy server would.
    let arrived: Promise<unknown> | undefined;
    const tables: StatisticsTablesFor = (db) => {
      const own = sqlStatisticsTables(db);
      return {
        ...own,
        async talliesChangedAfter(appId, position) {
          const newer = await own.talliesChangedAfter(appId, position);
          arrived = ingest(5);
          await arrived;
          await until(async () => (await total()) === 6, 1_500);
          return newer;
        },
      };
    };
    await refreshStatistics({ log: intake.store, tables, clock: systemClock })('race');
    await arrived;
    // Counted once when the subscriber has it: not lost, not counted twice.
    expect(await until(async () => (await total()) === 6, 10_000)).toBe(true);
    await sleep(200);
    expect(await total()).toBe(6);
  });
});
