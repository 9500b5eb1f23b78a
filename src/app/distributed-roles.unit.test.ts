import { describe, expect, it } from 'vitest';
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
});
