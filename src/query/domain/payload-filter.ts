import { ValidationError, type Violation } from '../../shared/errors.js';

/** One equality condition on a payload field: `?payload.customer.id=42`. */
export interface PayloadCondition {
  /** The field's path inside the payload, one key per level. */
  readonly path: readonly string[];
  /**
   * The values that count as equal: the text as given, and when it reads as a JSON number, boolean or
   * null, that value too (a query string cannot tell `"42"` from `42`).
   */
  readonly values: ReadonlyArray<string | number | boolean | null>;
}

const PREFIX = 'payload.';
// Plain keys only: they go into a JSON path (SQLite) or a containment document (PostgreSQL).
const KEY = /^[A-Za-z0-9_]{1,64}$/;
const MAX_DEPTH = 5;
const MAX_CONDITIONS = 5;
const MAX_VALUE_LENGTH = 256;

/** The `payload.*` parameters of a query string, checked strictly; other parameters are left alone. */
export function parsePayloadFilter(query: Readonly<Record<string, unknown>>): PayloadCondition[] {
  const conditions: PayloadCondition[] = [];
  const violations: Violation[] = [];
  for (const [name, raw] of Object.entries(query)) {
    if (!name.startsWith(PREFIX)) continue;
    const path = name.slice(PREFIX.length).split('.');
    if (path.length > MAX_DEPTH || !path.every((key) => KEY.test(key))) {
      violations.push({
        path: name,
        message: `must name a payload field: up to ${MAX_DEPTH} keys of letters, digits and _, separated by dots`,
      });
      continue;
    }
    if (typeof raw !== 'string') {
      violations.push({ path: name, message: 'must be given once' });
      continue;
    }
    if (raw.length > MAX_VALUE_LENGTH) {
      violations.push({ path: name, message: `must be at most ${MAX_VALUE_LENGTH} characters` });
      continue;
    }
    conditions.push({ path, values: candidates(raw) });
  }
  if (conditions.length + violations.length > MAX_CONDITIONS) {
    violations.push({ path: 'payload', message: `at most ${MAX_CONDITIONS} payload filters` });
  }
  if (violations.length > 0) throw new ValidationError('query.invalid-payload-filter', 'invalid payload filter', violations);
  return conditions;
}

function candidates(text: string): Array<string | number | boolean | null> {
  if (text === 'true') return [text, true];
  if (text === 'false') return [text, false];
  if (text === 'null') return [text, null];
  const number = Number(text);
  return /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/.test(text) && Number.isFinite(number) ? [text, number] : [text];
}
