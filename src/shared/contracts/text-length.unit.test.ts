import { describe, expect, it } from 'vitest';
import { EVENT_TYPE_PATTERN } from './event-type-rule.js';
import { longerThan } from './text-length.js';

// JSON Schema's maxLength and pattern count code points, and the OpenAPI document promises those limits.
describe('text limits count characters, not UTF-16 units', () => {
  it('takes 255 emoji within a limit of 255 and refuses 256', () => {
    expect(longerThan('😀'.repeat(255), 255)).toBe(false);
    expect(longerThan('😀'.repeat(256), 255)).toBe(true);
    expect(longerThan('a'.repeat(256), 255)).toBe(true);
    expect(longerThan('', 0)).toBe(false);
  });

  it('takes an event type of 128 emoji and refuses 129', () => {
    expect(EVENT_TYPE_PATTERN.test('😀'.repeat(128))).toBe(true);
    expect(EVENT_TYPE_PATTERN.test('😀'.repeat(129))).toBe(false);
    expect(EVENT_TYPE_PATTERN.test('Café Visited')).toBe(true);
  });
});
