import { describe, expect, it } from 'vitest';
import { subjectsOfTypes } from '../event-messages.js';
import { subjectMatches } from '../subject-matches.js';
import { commonWildcard } from './nats-message-bus.js';

describe('one filter for several subjects (NATS servers before 2.10)', () => {
  it.each([
    [['intake.*.DataIngested', 'intake.*.DataValidated'], 'intake.*.>'],
    [['a.b.c', 'a.b.d'], 'a.b.>'],
    [['a.b', 'c.d'], '>'],
    [['a.>', 'a.b.c'], 'a.>'],
  ])('covers %j with %s', (subjects, wildcard) => {
    expect(commonWildcard(subjects)).toBe(wildcard);
    for (const subject of subjects.filter((s) => !s.includes('*') && !s.includes('>')))
      expect(subjectMatches(wildcard, subject)).toBe(true);
  });

  it('names the subjects of event types whatever context publishes them', () => {
    expect(subjectsOfTypes(['DataIngested', 'odd.type'], 'staging')).toEqual(['staging.*.DataIngested', 'staging.*.odd_type']);
    expect(subjectMatches('staging.*.DataIngested', 'staging.ingestion.DataIngested')).toBe(true);
  });
});
