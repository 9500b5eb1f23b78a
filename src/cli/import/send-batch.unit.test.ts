import { describe, expect, it } from 'vitest';
import { retryAfterMs } from './send-batch.js';

describe('reading Retry-After', () => {
  const now = Date.parse('2025-01-01T10:00:00Z');

  it('reads seconds or an HTTP date, and caps a long wait at a minute', () => {
    expect(retryAfterMs('5', now)).toBe(5000);
    expect(retryAfterMs(' 30 ', now)).toBe(30_000);
    expect(retryAfterMs('3600', now)).toBe(60_000);
    expect(retryAfterMs('Wed, 01 Jan 2025 10:00:12 GMT', now)).toBe(12_000);
    expect(retryAfterMs('Wed, 01 Jan 2025 09:00:00 GMT', now)).toBe(0);
  });

  it('ignores an absent or unreadable header', () => {
    expect(retryAfterMs(null, now)).toBeUndefined();
    expect(retryAfterMs('soon', now)).toBeUndefined();
    expect(retryAfterMs('-5', now)).toBeUndefined();
  });
});
