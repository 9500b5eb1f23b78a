import { describe, expect, it } from 'vitest';
import { ConflictError, ValidationError } from '../../shared/errors.js';
import { decideCreate, evolveApplication, noApplication } from './application.js';

const at = new Date('2026-12-04T10:00:00.000Z');

function refusal(appId: string): string | undefined {
  try {
    decideCreate(appId, 'name', noApplication, at);
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return (error as ValidationError).violations.map((v) => `${v.path}: ${v.message}`).join('; ');
  }
}

describe('creating an application', () => {
  it('takes ids of any other characters, slashes and colons included', () => {
    // A family emoji and a rainbow flag hold zero-width joiners, which are part of what they show.
    const emoji = [
      '\u{1F468}\u200d\u{1F469}\u200d\u{1F467}',
      '\u{1F3F3}\ufe0f\u200d\u{1F308}',
      '\u2764\ufe0f',
      // Skin tones before the joiner, and the tags of a subdivision flag (England).
      '\u{1F469}\u{1F3FD}\u200d\u{1F4BB}',
      '\u{1F9D1}\u{1F3FB}\u200d\u{1F91D}\u200d\u{1F9D1}\u{1F3FF}',
      '\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}',
    ];
    // Joiners that spell a word: after a virama (Devanagari), a non-joiner between Arabic-script letters (Persian).
    const spelled = ['\u0915\u094D\u200D\u0937', '\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645'];
    for (const appId of ['shop', 'a/b', 'a:b', '...', '.well-known', 'a..b', 'café ☕', 'inner space', '%2e%2e', ...emoji, ...spelled]) {
      expect(refusal(appId), appId).toBeUndefined();
    }
  });

  it.each([
    ['..', 'must not be "." or ".."'],
    ['.', 'must not be "." or ".."'],
    [' shop', 'must not begin or end with whitespace'],
    ['shop\u00a0', 'must not begin or end with whitespace'],
    ['c\u0085d', 'must not contain control'],
    ['a\u2028b', 'must not contain control'],
    ['invoice\u202egnp.exe', 'must not contain control'],
    ['x\u2066y', 'must not contain control'],
    // Each of these reads "shop" in a terminal and a dashboard.
    ['shop\u200b', 'must not contain control'],
    ['sh\u00adop', 'must not contain control'],
    ['sh\u2060op', 'must not contain control'],
    ['sho\u034fp', 'must not contain control'],
    ['\u200dshop', 'must not contain control'],
    ['sh\ufeffop', 'must not contain control'],
    ['sh\u3164op', 'must not contain control'],
    // A non-joiner between Latin letters, a joiner after an Arabic letter: they spell nothing.
    ['sh\u200Cop', 'must not contain control'],
    ['\u0645\u200D\u062E', 'must not contain control'],
    // Tag characters anywhere but in a flag show as nothing.
    ['shop\u{E0067}\u{E007F}', 'must not contain control'],
    ['cafe\u0301', 'must be in Unicode normalization form C'],
  ])('refuses the id %j', (appId, message) => {
    expect(refusal(appId)).toContain(`app_id: ${message}`);
  });

  it('answers a conflict, not a refusal, for an application an earlier version created with such an id', () => {
    const existing = evolveApplication(noApplication, {
      type: 'ApplicationCreated',
      data: { app_id: '..', name: 'old', created_at: at.toISOString() },
    });
    expect(() => decideCreate('..', 'name', existing, at)).toThrow(ConflictError);
  });
});
