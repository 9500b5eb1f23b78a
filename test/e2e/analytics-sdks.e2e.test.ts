import { Analytics as SegmentAnalytics } from '@segment/analytics-node';
import RudderAnalytics from '@rudderstack/rudder-sdk-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestIntake, type TestIntake } from '../support/embedded-intake.js';
import { createSource, eventsOf } from '../support/analytics-source.js';
import { startDroppingProxy } from '../support/response-dropping-proxy.js';

let intake: TestIntake;
let baseUrl: string;
let port: number;

beforeAll(async () => {
  intake = await startTestIntake();
  baseUrl = await intake.app.listen({ host: '127.0.0.1', port: 0 });
  port = Number(new URL(baseUrl).port);
});
afterAll(async () => intake.dispose());

/** The SDK's messages as stored: each `n` exactly once, each messageId exactly once. */
async function expectStoredOnce(appId: string, count: number) {
  const stored = await eventsOf(intake, appId);
  const ns = stored.map(
    (e) => (e.payload.properties as { n?: number } | undefined)?.n ?? (e.payload.traits as { n?: number } | undefined)?.n,
  );
  expect(ns.sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: count }, (_, i) => i));
  expect(new Set(stored.map((e) => e.payload.messageId)).size).toBe(count);
  return stored;
}

describe('@segment/analytics-node, unchanged, pointed at Intake', () => {
  it('delivers track, identify, page, screen, group and alias as events of the key application', async () => {
    const { writeKey } = await createSource(intake, 'segment-node');
    const analytics = new SegmentAnalytics({ writeKey, host: baseUrl, flushAt: 4, flushInterval: 50 });
    const failures: unknown[] = [];
    analytics.on('error', (error) => failures.push(error));
    analytics.identify({ userId: 'u1', traits: { n: 0, plan: 'pro' } });
    for (let n = 1; n <= 6; n++) analytics.track({ userId: 'u1', event: 'Order Completed', properties: { n, revenue: n } });
    analytics.page({ userId: 'u1', name: 'Home', properties: { n: 7 } });
    analytics.screen({ userId: 'u1', name: 'Cart', properties: { n: 8 } });
    analytics.group({ userId: 'u1', groupId: 'acme', traits: { n: 9 } });
    analytics.alias({ userId: 'u1', previousId: 'anon-1' });
    await analytics.closeAndFlush();
    expect(failures).toEqual([]);
    const stored = await eventsOf(intake, 'segment-node');
    expect(stored.map((e) => e.event_type).sort()).toEqual(
      [
        'Order Completed',
        'Order Completed',
        'Order Completed',
        'Order Completed',
        'Order Completed',
        'Order Completed',
        'alias',
        'group',
        'identify',
        'page',
        'screen',
      ].sort(),
    );
    expect(new Set(stored.map((e) => e.payload.messageId)).size).toBe(11);
  });

  it('stores each message once when the first answer is lost and the SDK retries', async () => {
    const { writeKey } = await createSource(intake, 'segment-retry');
    const proxy = await startDroppingProxy(port);
    try {
      const analytics = new SegmentAnalytics({ writeKey, host: `http://127.0.0.1:${proxy.port}`, flushAt: 20, flushInterval: 50 });
      for (let n = 0; n < 20; n++) analytics.track({ anonymousId: 'a1', event: 'Viewed', properties: { n } });
      await analytics.closeAndFlush();
      expect(proxy.dropped()).toBe(1);
      await expectStoredOnce('segment-retry', 20);
    } finally {
      await proxy.close();
    }
  });
});

describe('@rudderstack/rudder-sdk-node, unchanged, pointed at Intake (gzip, form-labelled)', () => {
  it('delivers its batches', async () => {
    const { writeKey } = await createSource(intake, 'rudder-node');
    const client = new RudderAnalytics(writeKey, { dataPlaneUrl: baseUrl, flushAt: 5, flushInterval: 50, logLevel: 'error' });
    client.identify({ userId: 'u1', traits: { n: 0 } });
    for (let n = 1; n < 12; n++) client.track({ userId: 'u1', event: 'Product Viewed', properties: { n } });
    await client.flush();
    await client.flush();
    await client.flush();
    const stored = await expectStoredOnce('rudder-node', 12);
    expect(stored.filter((e) => e.event_type === 'Product Viewed')).toHaveLength(11);
  });

  it('stores each message once when the first answer is lost and the SDK retries', async () => {
    const { writeKey } = await createSource(intake, 'rudder-retry');
    const proxy = await startDroppingProxy(port);
    try {
      const client = new RudderAnalytics(writeKey, {
        dataPlaneUrl: `http://127.0.0.1:${proxy.port}`,
        flushAt: 10,
        flushInterval: 50,
        logLevel: 'error',
      });
      for (let n = 0; n < 10; n++) client.track({ anonymousId: 'a1', event: 'Viewed', properties: { n } });
      await client.flush();
      expect(proxy.dropped()).toBe(1);
      await expectStoredOnce('rudder-retry', 10);
    } finally {
      await proxy.close();
    }
  });
});
