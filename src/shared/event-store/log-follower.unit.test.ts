import { expect, it } from 'vitest';
import type { RecordedEvent } from '../events.js';
import { logFollower } from './log-follower.js';

const at = (position: number) => ({ position }) as RecordedEvent;

it('waits its poll once every announced commit was read, and retries soon, more slowly each time, until then', () => {
  let now = 0;
  const follower = logFollower(1000, () => now);
  expect(follower.idleWaitMs()).toBe(1000);
  follower.announced(7);
  follower.announced(5);
  follower.read([at(5)]);
  expect([follower.idleWaitMs(), follower.idleWaitMs(), follower.idleWaitMs()]).toEqual([2, 4, 8]);
  // Positions need not come in commit order: an earlier one read later still counts.
  follower.read([at(3), at(7)]);
  expect(follower.idleWaitMs()).toBe(1000);
  // One it never reads (it had read past it) is given up after a while.
  follower.announced(9);
  expect(follower.idleWaitMs()).toBe(2);
  now = 6000;
  expect(follower.idleWaitMs()).toBe(1000);
});

it('asks for no retry when a commit is announced after the reader already read it', () => {
  const follower = logFollower(1000, () => 0);
  follower.read([at(4), at(5)]);
  follower.announced(5);
  expect(follower.idleWaitMs()).toBe(1000);
  follower.announced(6);
  expect(follower.idleWaitMs()).toBe(2);
});

it('looks again for an announced position it may not have read, when it read a batch out of position order', () => {
  const follower = logFollower(1000, () => 0);
  // Events from before position order on PostgreSQL come in their old order: this batch says nothing
  // of what lies between its positions.
  follower.read([at(7), at(4)]);
  follower.announced(5);
  expect(follower.idleWaitMs()).toBe(2);
});
