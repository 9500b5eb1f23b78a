import type { JsonValue } from '../../../shared/events.js';
import { ok, type Processor } from '../processor.js';

// Date-times as people send them: "2026-11-24 10:00", "2026-11-24T10:00:00+02:00", with or without seconds and zone.
const DATE_TIME = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)(Z|[+-]\d{2}:?\d{2})?$/i;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** Trims strings, rewrites date-times as canonical UTC ISO-8601 and lower-cases e-mail addresses, at any depth. */
export const normalize: Processor = {
  name: 'normalize',
  run: (input) => ok(normalizeObject(input)),
};

function normalizeValue(value: JsonValue): JsonValue {
  if (typeof value === 'string') return normalizeString(value);
  if (Array.isArray(value)) return value.map(normalizeValue);
  if (value !== null && typeof value === 'object') return normalizeObject(value);
  return value;
}

function normalizeObject(input: { [key: string]: JsonValue }): { [key: string]: JsonValue } {
  const output: { [key: string]: JsonValue } = {};
  for (const [key, value] of Object.entries(input)) output[key] = normalizeValue(value);
  return output;
}

function normalizeString(raw: string): string {
  const value = raw.trim();
  const dateTime = DATE_TIME.exec(value);
  if (dateTime) {
    const [, date, time, zone] = dateTime;
    const offset = !zone ? 'Z' : zone.toUpperCase() === 'Z' ? 'Z' : zone.includes(':') ? zone : `${zone.slice(0, 3)}:${zone.slice(3)}`;
    const parsed = new Date(`${date}T${time}${offset}`);
    if (!Number.isNaN(parsed.getTime())) return parsed.toISOString();
  }
  if (EMAIL.test(value)) return value.toLowerCase();
  return value;
}
