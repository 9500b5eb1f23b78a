/**
 * `Retry-After` in milliseconds from `now`: either delay-seconds or an HTTP date (RFC 9110 §10.2.3).
 * Undefined when absent or unreadable, so the worker falls back to its own backoff; a date in the
 * past means "now", i.e. 0.
 */
export function parseRetryAfter(header: string | string[] | undefined, now: Date): number | undefined {
  const value = (Array.isArray(header) ? header[0] : header)?.trim();
  if (value === undefined || value === '') return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  if (/^[-+]?[\d.]+$/.test(value)) return undefined; // negative or fractional seconds are not allowed
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now.getTime());
}
