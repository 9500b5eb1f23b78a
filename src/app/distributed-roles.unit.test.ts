import { describe, expect, it } from 'vitest';
import { publishedTypes } from '../shared/contracts/event-publishers.js';
import { ROLE_CONTEXTS, roleRunning } from './distributed.js';

describe('the role each context runs in', () => {
  it('is the one whose subjects carry its events: applications publish from ingestion', () => {
    expect(roleRunning('applications')).toBe('ingestion');
    expect(roleRunning('routing')).toBe('routing');
    expect(roleRunning('nowhere')).toBeUndefined();
    // Each context runs in one role only, or its events would have two sources.
    for (const [role, contexts] of Object.entries(ROLE_CONTEXTS)) {
      for (const context of contexts) expect(roleRunning(context.name)).toBe(role);
    }
  });

  it('runs the publisher of every event type that crosses contexts, so its subjects name a real role', () => {
    const unplaced = [...publishedTypes()].filter(([, context]) => roleRunning(context) === undefined);
    expect(unplaced).toEqual([]);
    expect(publishedTypes().get('DataValidated')).toBe('validation');
  });
});
