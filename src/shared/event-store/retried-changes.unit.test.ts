import { describe, expect, it } from 'vitest';
import { UnavailableError, ValidationError } from '../errors.js';
import { ConcurrencyError } from './event-store.js';
import { retriedCommits } from './retried-changes.js';

/** A rule's version, and commits that fail as the store does when another process appended since the read. */
function ruleOf(version = 1) {
  const rule = { version };
  const commitAt = (read: number) => async () => {
    if (read !== rule.version) throw new ConcurrencyError('rule-r', read, rule.version);
    rule.version++;
    return read;
  };
  return { rule, commitAt };
}

describe('changes to one stream, decided again when another committed first', () => {
  it('decides again on the version another process committed in between, and commits that decision', async () => {
    const { rule, commitAt } = ruleOf();
    const changes = retriedCommits('routing.busy', (key) => `routing rule ${key}`);
    let decisions = 0;
    const committed = await changes('r', async () => {
      const read = rule.version;
      // Another process's change lands after the first read.
      if (++decisions === 1) rule.version++;
      return commitAt(read);
    });
    expect([decisions, committed, rule.version]).toEqual([2, 2, 3]);
  });

  it('decides again when PostgreSQL ended its commit to break a deadlock (a rule deleted while its attempts are recorded answered 500)', async () => {
    const changes = retriedCommits('routing.busy', (key) => `routing rule ${key}`);
    let decisions = 0;
    const committed = await changes('r', async () => async () => {
      if (++decisions === 1) throw Object.assign(new Error('deadlock detected'), { code: '40P01' });
      return 'deleted';
    });
    expect([committed, decisions]).toEqual(['deleted', 2]);
  });

  it('takes changes of this process one after the other, each deciding on the one before', async () => {
    const { rule, commitAt } = ruleOf();
    const changes = retriedCommits('routing.busy', (key) => `routing rule ${key}`);
    let decisions = 0;
    const decide = async () => {
      decisions++;
      const read = rule.version;
      await new Promise((resolve) => setTimeout(resolve, 1));
      return commitAt(read);
    };
    expect(await Promise.all([1, 2, 3, 4, 5].map(() => changes('r', decide)))).toEqual([1, 2, 3, 4, 5]);
    expect(decisions).toBe(5);
  });

  it('answers routing.busy when other processes keep winning, and passes on any other error at once', async () => {
    const changes = retriedCommits('routing.busy', (key) => `routing rule ${key}`);
    const beaten = changes('r', async () => async () => Promise.reject(new ConcurrencyError('rule-r', 1, 2)));
    await expect(beaten).rejects.toBeInstanceOf(UnavailableError);
    await expect(beaten).rejects.toMatchObject({ code: 'routing.busy' });
    let decisions = 0;
    const refused = changes('r', async () => {
      decisions++;
      throw new ValidationError('routing.invalid-rule', 'no');
    });
    await expect(refused).rejects.toMatchObject({ code: 'routing.invalid-rule' });
    expect(decisions).toBe(1);
  }, 20_000);
});
