import { describe, expect, it } from 'vitest';
import { busyPoolCheck, subscribersCheck } from './distributed.js';

describe('a distributed role’s readiness checks', () => {
  it('tell a busy server from a stopped one: faults that are all a free connection waited for are degraded', () => {
    const busy = { name: 'query', fault: 'all 3 database connections of this server are in use', busy: true };
    const lost = { name: 'statistics', fault: 'Connection terminated', busy: false };
    expect(subscribersCheck([busy], [])).toMatchObject({ status: 'degraded', detail: expect.stringMatching(/query retrying/) });
    expect(subscribersCheck([busy, lost], [])).toMatchObject({ status: 'down' });
    expect(subscribersCheck([], [{ name: 'query', until: 42 }])).toEqual({
      status: 'degraded',
      detail: 'query replaying up to position 42',
    });
    expect(subscribersCheck([], [])).toEqual({ status: 'ok' });
  });

  it('say the database is busy without waiting behind the requests already waiting for a connection', () => {
    expect(busyPoolCheck({ totalCount: 3, waitingCount: 0 })).toBeUndefined();
    expect(busyPoolCheck({ totalCount: 3, waitingCount: 7 })).toEqual({
      status: 'degraded',
      detail: 'busy: all 3 connections in use, 7 requests waiting (DATABASE_POOL_SIZE)',
    });
  });
});
