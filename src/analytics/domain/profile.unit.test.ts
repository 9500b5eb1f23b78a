import { describe, expect, it } from 'vitest';
import type { JsonObject } from '../../shared/events.js';
import { profileFactsOf } from './profile.js';

const traitsOf = (payload: JsonObject) =>
  profileFactsOf('item-1', { timestamp: '2026-12-01T10:00:00.000Z', ...payload }).flatMap((fact) =>
    fact.kind === 'trait' ? [[fact.trait, fact.value]] : [],
  );

describe('the profile facts of a message', () => {
  it("reads an identify's traits from context.traits as RudderStack's SDKs send them, traits winning where both name one", () => {
    expect(traitsOf({ type: 'identify', userId: 'u1', context: { traits: { name: 'Richard', email: 'r@x' } } })).toEqual([
      ['name', 'Richard'],
      ['email', 'r@x'],
    ]);
    expect(traitsOf({ type: 'identify', userId: 'u1', traits: { plan: 'pro' }, context: { traits: { plan: 'free', age: 3 } } })).toEqual([
      ['plan', 'pro'],
      ['age', 3],
    ]);
  });

  it('ties no id to itself: an alias or identify that names one id twice links nothing', () => {
    const links = (payload: JsonObject) => profileFactsOf('item-1', payload).filter((fact) => fact.kind === 'linked-id');
    expect(links({ type: 'alias', userId: 'u1', previousId: 'u1' })).toEqual([]);
    expect(links({ type: 'identify', userId: 'v1', anonymousId: 'v1' })).toEqual([]);
    expect(links({ type: 'alias', userId: 'u1', previousId: 'u0' })).toHaveLength(1);
  });

  it('ties the anonymous id a track, page, screen or group sends beside the user id, as an identify does', () => {
    const links = (payload: JsonObject) => profileFactsOf('item-1', payload).filter((fact) => fact.kind === 'linked-id');
    const tie = { kind: 'linked-id', userId: 'u1', otherId: 'a1', link: 'anonymous' };
    for (const type of ['track', 'page', 'screen'])
      expect(links({ type, event: 'Viewed', userId: 'u1', anonymousId: 'a1' }), type).toEqual([tie]);
    expect(links({ type: 'group', groupId: 'g1', userId: 'u1', anonymousId: 'a1' })).toEqual([tie]);
    expect(links({ type: 'track', event: 'Viewed', anonymousId: 'a1' })).toEqual([]);
    expect(links({ type: 'track', event: 'Viewed', userId: 'u1' })).toEqual([]);
    expect(links({ type: 'track', event: 'Viewed', userId: 'u1', anonymousId: 'u1' })).toEqual([]);
  });
});
