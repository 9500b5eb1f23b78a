import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, startTestIntake, type TestIntake } from '../../../../test/support/embedded-intake.js';
import { basic, createSource } from '../../../../test/support/analytics-source.js';
import { PROFILE_LIMITS } from '../../application/get-profile.js';

let intake: TestIntake;
let shop: { writeKey: string };
let blog: { writeKey: string };

const send = async (writeKey: string, batch: object[]) => {
  const response = await intake.app.inject({
    method: 'POST',
    url: '/v1/batch',
    headers: { ...basic(writeKey), 'content-type': 'application/json' },
    payload: { batch },
  });
  expect(response.statusCode).toBe(200);
};
const profile = (appId: string, userId: string, headers: Record<string, string> = auth) =>
  intake.app.inject({ method: 'GET', url: `/api/profiles/${appId}/${userId}`, headers });

beforeAll(async () => {
  intake = await startTestIntake();
  shop = await createSource(intake, 'shop');
  blog = await createSource(intake, 'blog');
  // Sent out of order: the later plan must win whatever the order of arrival.
  await send(shop.writeKey, [
    {
      type: 'identify',
      userId: 'u1',
      anonymousId: 'anon-2',
      traits: { plan: 'pro', email: 'u1@example.com' },
      timestamp: '2026-11-24T10:00:00Z',
      messageId: 'i2',
    },
    {
      type: 'identify',
      userId: 'u1',
      anonymousId: 'anon-1',
      traits: { plan: 'free', name: 'Ada' },
      timestamp: '2026-11-20T10:00:00Z',
      messageId: 'i1',
    },
    { type: 'identify', anonymousId: 'visitor-9', traits: { referrer: 'newsletter' }, timestamp: '2026-11-19T10:00:00Z', messageId: 'i0' },
    { type: 'alias', userId: 'u1', previousId: 'visitor-9', messageId: 'a1' },
    { type: 'group', userId: 'u1', groupId: 'acme', traits: { seats: 10 }, timestamp: '2026-11-21T10:00:00Z', messageId: 'g1' },
    { type: 'group', userId: 'u2', groupId: 'acme', traits: { seats: 12 }, timestamp: '2026-11-22T10:00:00Z', messageId: 'g2' },
    // The SDKs send the anonymous id beside the user id once the user is known: a track or page ties them too.
    { type: 'track', userId: 'u1', anonymousId: 'anon-3', event: 'Order Completed', properties: { plan: 'ignored' }, messageId: 't1' },
    { type: 'page', userId: 'u3', anonymousId: 'anon-9', name: 'Home', messageId: 'p1' },
  ]);
  await send(blog.writeKey, [{ type: 'identify', userId: 'u1', traits: { plan: 'blogger' }, messageId: 'b1' }]);
  await intake.subscriptions.caughtUp();
});
afterAll(async () => intake.dispose());

const expected = {
  app_id: 'shop',
  user_id: 'u1',
  traits: { email: 'u1@example.com', name: 'Ada', plan: 'pro', referrer: 'newsletter' },
  anonymous_ids: ['anon-1', 'anon-2', 'anon-3'],
  previous_ids: ['visitor-9'],
  groups: [{ group_id: 'acme', traits: { seats: 12 }, since: '2026-11-21T10:00:00.000Z', traits_truncated: false }],
  truncated: [],
};

describe('GET /api/profiles/{app_id}/{user_id}', () => {
  it('merges the traits (latest wins, aliased ids included), the anonymous ids and the groups of one application', async () => {
    const response = await profile('shop', 'u1');
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual(expected);
    expect((await profile('blog', 'u1')).json().traits).toEqual({ plan: 'blogger' });
    expect((await profile('shop', 'u3')).json()).toMatchObject({ traits: {}, anonymous_ids: ['anon-9'], previous_ids: [], groups: [] });
  });

  it('is rebuilt to the same view by a replay', async () => {
    await intake.subscriptions.replay('profiles');
    await intake.subscriptions.caughtUp();
    expect((await profile('shop', 'u1')).json()).toEqual(expected);
  });

  it(`says which parts it cut: here the anonymous ids past the first ${PROFILE_LIMITS.ids}`, async () => {
    const ids = Array.from({ length: PROFILE_LIMITS.ids + 1 }, (_, i) => `visitor-${String(i).padStart(3, '0')}`);
    await send(
      shop.writeKey,
      ids.map((anonymousId, i) => ({ type: 'identify', userId: 'crowded', anonymousId, traits: { visits: i }, messageId: `c${i}` })),
    );
    await intake.subscriptions.caughtUp();
    const body = (await profile('shop', 'crowded')).json();
    expect(body.anonymous_ids).toEqual(ids.slice(0, PROFILE_LIMITS.ids));
    expect(body.truncated).toEqual(['anonymous_ids']);
  });

  it('follows a chain of aliases: ids merged into an id merged into the user, with their traits and anonymous ids', async () => {
    await send(shop.writeKey, [
      { type: 'identify', userId: 'guest-7', anonymousId: 'device-7', traits: { first_seen: 'mobile' }, messageId: 'ch1' },
      { type: 'alias', userId: 'email-7', previousId: 'guest-7', messageId: 'ch2' },
      { type: 'identify', userId: 'email-7', traits: { email: 'seven@example.com' }, messageId: 'ch3' },
      { type: 'alias', userId: 'customer-7', previousId: 'email-7', messageId: 'ch4' },
      // A loop back to the user ends the chain, as a second path to an id already met does.
      { type: 'alias', userId: 'guest-7', previousId: 'customer-7', messageId: 'ch5' },
      { type: 'alias', userId: 'customer-7', previousId: 'guest-7', messageId: 'ch6' },
      { type: 'group', userId: 'guest-7', groupId: 'seven-co', messageId: 'ch7' },
    ]);
    await intake.subscriptions.caughtUp();
    expect((await profile('shop', 'customer-7')).json()).toMatchObject({
      traits: { email: 'seven@example.com', first_seen: 'mobile' },
      anonymous_ids: ['device-7'],
      previous_ids: ['email-7', 'guest-7'],
      groups: [{ group_id: 'seven-co' }],
      truncated: [],
    });
  });

  it('answers 404 for an unknown user and needs the admin token', async () => {
    expect((await profile('shop', 'nobody')).statusCode).toBe(404);
    expect((await profile('shop', 'u1', { authorization: `Bearer ${shop.writeKey}` })).statusCode).toBe(403);
    expect((await profile('shop', 'u1', {})).statusCode).toBe(401);
  });
});
