/**
 * Time buckets of the statistics: an item counts in the hour, the day and the week (starting on
 * Monday) of its `received_at`, all in UTC so that every replica and every replay agrees.
 */
export const TIME_PERIODS = ['hourly', 'daily', 'weekly'] as const;
export type TimePeriod = (typeof TIME_PERIODS)[number];

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** The start of the bucket holding `at`, as an ISO-8601 UTC instant (which sorts as text). */
export function bucketStart(period: TimePeriod, at: string | Date): string {
  const time = new Date(at);
  if (Number.isNaN(time.getTime())) throw new RangeError(`not a date-time: ${String(at)}`);
  switch (period) {
    case 'hourly':
      return new Date(Math.floor(time.getTime() / HOUR_MS) * HOUR_MS).toISOString();
    case 'daily':
      return new Date(Math.floor(time.getTime() / DAY_MS) * DAY_MS).toISOString();
    case 'weekly': {
      // getUTCDay() counts from Sunday (0); the week starts on Monday (ISO 8601).
      const daysSinceMonday = (time.getUTCDay() + 6) % 7;
      // Through the time itself, not Date.UTC, which reads the years 0-99 as 1900-1999.
      const monday = new Date(time.getTime());
      monday.setUTCDate(time.getUTCDate() - daysSinceMonday);
      monday.setUTCHours(0, 0, 0, 0);
      return monday.toISOString();
    }
  }
}

/** The start of each period's bucket holding `at`. */
export function bucketStarts(at: string | Date): Record<TimePeriod, string> {
  // Every item of a batch tends to share its hour: an instant as toISOString writes it is
  // placed by its first 13 characters (date and hour), so the answer for that hour is reused.
  const hour = typeof at === 'string' && at.length === 24 && at[10] === 'T' && at.endsWith('Z') ? at.slice(0, 13) : undefined;
  if (hour !== undefined && hour === lastHour && lastStarts) return lastStarts;
  const starts = Object.freeze({ hourly: bucketStart('hourly', at), daily: bucketStart('daily', at), weekly: bucketStart('weekly', at) });
  if (hour !== undefined) [lastHour, lastStarts] = [hour, starts];
  return starts;
}

let lastHour: string | undefined;
let lastStarts: Readonly<Record<TimePeriod, string>> | undefined;

/** The dashboard's window per period: two days of hours, a month of days, a quarter of weeks. */
export const DASHBOARD_WINDOW: Record<TimePeriod, number> = { hourly: 48, daily: 30, weekly: 12 };

const STEP_MS: Record<TimePeriod, number> = { hourly: HOUR_MS, daily: DAY_MS, weekly: 7 * DAY_MS };

/** The starts of the `count` buckets up to and including the one holding `now`, oldest first. */
export function windowBuckets(period: TimePeriod, now: Date, count: number): string[] {
  const last = new Date(bucketStart(period, now)).getTime();
  return Array.from({ length: count }, (_, i) => new Date(last - (count - 1 - i) * STEP_MS[period]).toISOString());
}
