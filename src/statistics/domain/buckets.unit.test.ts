import { describe, expect, it } from 'vitest';
import { bucketStart, bucketStarts } from './buckets.js';

describe('bucketStart', () => {
  it('truncates to the UTC hour', () => {
    expect(bucketStart('hourly', '2026-11-24T10:59:59.999Z')).toBe('2026-11-24T10:00:00.000Z');
    expect(bucketStart('hourly', '2026-11-24T11:00:00.000Z')).toBe('2026-11-24T11:00:00.000Z');
  });

  it('truncates to the UTC day, whatever the offset the instant was written with', () => {
    expect(bucketStart('daily', '2026-11-24T23:59:59.999Z')).toBe('2026-11-24T00:00:00.000Z');
    // 01:30 in Paris on the 25th is still the 24th in UTC.
    expect(bucketStart('daily', '2026-11-25T01:30:00+02:00')).toBe('2026-11-24T00:00:00.000Z');
    expect(bucketStart('hourly', '2026-11-25T01:30:00+02:00')).toBe('2026-11-24T23:00:00.000Z');
  });

  it('starts weeks on Monday 00:00 UTC', () => {
    // 2026-11-23 is a Monday.
    expect(bucketStart('weekly', '2026-11-23T00:00:00.000Z')).toBe('2026-11-23T00:00:00.000Z');
    expect(bucketStart('weekly', '2026-11-25T12:00:00.000Z')).toBe('2026-11-23T00:00:00.000Z');
    // A Sunday 23:59 belongs to the week that started the Monday before, not the one starting a minute later.
    expect(bucketStart('weekly', '2026-11-29T23:59:00.000Z')).toBe('2026-11-23T00:00:00.000Z');
    expect(bucketStart('weekly', '2026-11-30T00:00:00.000Z')).toBe('2026-11-30T00:00:00.000Z');
    // Date.UTC would read the year 50 as 1950 (15 June 50 was a Wednesday).
    expect(bucketStart('weekly', '0050-06-15T08:00:00.000Z')).toBe('0050-06-13T00:00:00.000Z');
  });

  it('carries weeks across months and years', () => {
    // Friday 1 January 2027 is in the week of Monday 28 December 2026.
    expect(bucketStart('weekly', '2027-01-01T08:00:00.000Z')).toBe('2026-12-28T00:00:00.000Z');
    // Sunday 1 March 2026 is in the week of Monday 23 February.
    expect(bucketStart('weekly', '2026-03-01T23:59:59.999Z')).toBe('2026-02-23T00:00:00.000Z');
  });

  it('gives every period at once', () => {
    expect(bucketStarts('2026-11-29T23:59:00.000Z')).toEqual({
      hourly: '2026-11-29T23:00:00.000Z',
      daily: '2026-11-29T00:00:00.000Z',
      weekly: '2026-11-23T00:00:00.000Z',
    });
  });

  it('gives the right buckets when consecutive instants share an hour, or do not', () => {
    expect(bucketStarts('2026-11-29T23:01:00.000Z').hourly).toBe('2026-11-29T23:00:00.000Z');
    expect(bucketStarts('2026-11-29T23:59:59.999Z').daily).toBe('2026-11-29T00:00:00.000Z');
    expect(bucketStarts('2026-11-30T00:00:00.000Z')).toEqual({
      hourly: '2026-11-30T00:00:00.000Z',
      daily: '2026-11-30T00:00:00.000Z',
      weekly: '2026-11-30T00:00:00.000Z',
    });
    // Not in toISOString's form: worked out in full, never taken for the hour it seems to start with.
    expect(bucketStarts('2026-11-30T00:30:00.000+02:00').daily).toBe('2026-11-29T00:00:00.000Z');
    expect(bucketStarts(new Date('2026-11-30T00:30:00.000Z')).daily).toBe('2026-11-30T00:00:00.000Z');
  });

  it('refuses what is not a date-time', () => {
    expect(() => bucketStart('daily', 'yesterday')).toThrow(RangeError);
  });
});
