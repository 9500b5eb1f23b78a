import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.js';
import {
  ATTRIBUTION_MODELS,
  attributeConversion,
  lookbackOfDays,
  MAX_TOUCHES_CREDITED,
  sharesOf,
  type AttributionModel,
  type Credit,
} from './attribution-models.js';
import type { Conversion } from './conversion.js';
import type { Touch } from './touch.js';
import { sdkVisitor, trackedVisitor, type ExternalId, type Instant, type InteractionType, type Visitor } from './values.js';

const THIRTY_DAYS = lookbackOfDays(30);

const V1 = trackedVisitor('v-1' as ExternalId);

const touch = (
  id: string,
  occurredAt: string,
  campaignId: string,
  partnerId: string,
  type: InteractionType = 'click',
  visitor: Visitor = V1,
): Touch => ({
  trackingEventId: id,
  visitor,
  partnerId: partnerId as ExternalId,
  campaignId: campaignId as ExternalId,
  interactionType: type,
  occurredAt: occurredAt as Instant,
});

const conversion = (occurredAt: string, value: number, visitor: Visitor = V1): Conversion => ({
  id: 'conv-1',
  visitor,
  value,
  occurredAt: occurredAt as Instant,
  recordedAt: occurredAt as Instant,
});

/** Credits of one model as `campaign@partner → share, value`, with floating-point noise rounded away. */
function creditsUnder(model: AttributionModel, credits: readonly Credit[]): Record<string, [number, number]> {
  const round = (n: number) => Math.round(n * 1e9) / 1e9;
  return Object.fromEntries(
    credits.filter((c) => c.model === model).map((c) => [`${c.campaignId}@${c.partnerId}`, [round(c.share), round(c.value)]]),
  );
}

describe('shares of a conversion by position', () => {
  it('first and last touch give everything to one end', () => {
    expect(sharesOf('first_touch', 3)).toEqual([1, 0, 0]);
    expect(sharesOf('last_touch', 3)).toEqual([0, 0, 1]);
  });

  it('linear splits evenly', () => {
    expect(sharesOf('linear', 4)).toEqual([0.25, 0.25, 0.25, 0.25]);
  });

  it('position-based gives 40/20/40, 100% to a single touch and 50/50 to two', () => {
    expect(sharesOf('position_based', 1)).toEqual([1]);
    expect(sharesOf('position_based', 2)).toEqual([0.5, 0.5]);
    expect(sharesOf('position_based', 3)).toEqual([0.4, 0.2, 0.4]);
    // 4 touches: the middle 20% is split in two, 10% each.
    expect(sharesOf('position_based', 4)).toEqual([0.4, 0.1, 0.1, 0.4]);
  });

  it.each(ATTRIBUTION_MODELS)('%s hands out exactly one conversion, whatever the number of touches', (model) => {
    for (let count = 1; count <= 12; count++) {
      expect(sharesOf(model, count).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    }
    expect(sharesOf(model, 0)).toEqual([]);
  });
});

describe('crediting a conversion: a worked example', () => {
  // Visitor v-1 converts on 2026-11-30T12:00Z for 150. The 30-day window opens 2026-10-31T12:00Z.
  const converted = conversion('2026-11-30T12:00:00.000Z', 150);
  const touches = [
    touch('t0', '2026-10-31T11:59:59.999Z', 'c0', 'A'), // 1 ms before the window opens: no credit
    touch('t1', '2026-11-01T09:00:00.000Z', 'c1', 'A', 'view'),
    touch('t2', '2026-11-10T09:00:00.000Z', 'c2', 'B'),
    touch('t3', '2026-11-20T09:00:00.000Z', 'c3', 'A', 'engagement'),
    touch('t4', '2026-11-25T09:00:00.000Z', 'c2', 'B'),
    touch('t5', '2026-11-30T12:00:00.000Z', 'c3', 'A'), // at the very moment of the conversion: counts
    touch('t6', '2026-11-30T12:00:00.001Z', 'c9', 'A'), // after the conversion: no credit
  ];
  // Eligible, in order: t1 c1, t2 c2, t3 c3, t4 c2, t5 c3 — five touches.
  const credits = attributeConversion(converted, touches, THIRTY_DAYS);

  it('first touch: all of it to c1 (t1)', () => {
    expect(creditsUnder('first_touch', credits)).toEqual({ 'c1@A': [1, 150] });
  });

  it('last touch: all of it to c3 (t5)', () => {
    expect(creditsUnder('last_touch', credits)).toEqual({ 'c3@A': [1, 150] });
  });

  it('linear: 1/5 = 0.2 a touch, added up per campaign', () => {
    expect(creditsUnder('linear', credits)).toEqual({
      'c1@A': [0.2, 30], // t1: 0.2 × 150 = 30
      'c2@B': [0.4, 60], // t2 + t4: 0.2 + 0.2 = 0.4; 0.4 × 150 = 60
      'c3@A': [0.4, 60], // t3 + t5: 0.4 → 60
    });
  });

  it('position-based: 40% first, 40% last, 20% / 3 = 6.67% to each of the three between', () => {
    expect(creditsUnder('position_based', credits)).toEqual({
      'c1@A': [0.4, 60], // t1 first: 0.4 × 150 = 60
      'c2@B': [0.133333333, 20], // t2 + t4 between: 2 × 0.2/3 = 0.1333…; × 150 = 20
      'c3@A': [0.466666667, 70], // t3 between + t5 last: 0.2/3 + 0.4 = 0.4666…; × 150 = 70
    });
  });

  it('orders touches by when they occurred, not by the order they arrived in', () => {
    const shuffled = [touches[4], touches[6], touches[1], touches[0], touches[5], touches[3], touches[2]].flatMap((t) => (t ? [t] : []));
    expect(attributeConversion(converted, shuffled, THIRTY_DAYS)).toEqual(credits);
  });
});

describe('crediting a conversion: small journeys', () => {
  const converted = conversion('2026-11-30T12:00:00.000Z', 80);

  it('one touch takes the whole conversion under every model', () => {
    const credits = attributeConversion(converted, [touch('t1', '2026-11-29T00:00:00.000Z', 'c1', 'A')], THIRTY_DAYS);
    for (const model of ATTRIBUTION_MODELS) expect(creditsUnder(model, credits)).toEqual({ 'c1@A': [1, 80] });
  });

  it('two touches split position-based 50/50 (40 each of 80)', () => {
    const credits = attributeConversion(
      converted,
      [touch('t1', '2026-11-28T00:00:00.000Z', 'c1', 'A'), touch('t2', '2026-11-29T00:00:00.000Z', 'c2', 'B')],
      THIRTY_DAYS,
    );
    expect(creditsUnder('position_based', credits)).toEqual({ 'c1@A': [0.5, 40], 'c2@B': [0.5, 40] });
    expect(creditsUnder('linear', credits)).toEqual({ 'c1@A': [0.5, 40], 'c2@B': [0.5, 40] });
  });

  it('touches at the same instant are ordered by their ids, so the result never depends on arrival', () => {
    const same = '2026-11-29T00:00:00.000Z';
    const credits = attributeConversion(converted, [touch('t-b', same, 'c2', 'B'), touch('t-a', same, 'c1', 'A')], THIRTY_DAYS);
    expect(creditsUnder('first_touch', credits)).toEqual({ 'c1@A': [1, 80] });
    expect(creditsUnder('last_touch', credits)).toEqual({ 'c2@B': [1, 80] });
  });

  it('credits nothing without a touch in the window, nor another visitor’s touches', () => {
    expect(attributeConversion(converted, [], THIRTY_DAYS)).toEqual([]);
    expect(
      attributeConversion(
        conversion('2026-11-30T12:00:00.000Z', 80, trackedVisitor('v-2' as ExternalId)),
        [touch('t1', '2026-11-29T00:00:00.000Z', 'c1', 'A')],
        THIRTY_DAYS,
      ),
    ).toEqual([]);
  });

  it('takes no touch of the same visitor id from another application or from the tracking API', () => {
    const at = '2026-11-29T00:00:00.000Z';
    const shopUser = sdkVisitor('shop', 'u1' as ExternalId);
    const others = [
      touch('t1', at, 'tracked', 'A', 'click', trackedVisitor('u1' as ExternalId)),
      touch('t2', at, 'blog', 'A', 'click', sdkVisitor('blog', 'u1' as ExternalId)),
      // "shop:u1" as one text names none of these: not the tracking API's visitor "shop:u1" ...
      touch('t3', at, 'colon', 'A', 'click', trackedVisitor('shop:u1' as ExternalId)),
      // ... nor app "shop:u1"'s user, nor app "sh"'s user "op:u1".
      touch('t4', at, 'app-colon', 'A', 'click', sdkVisitor('shop:u1', 'u1' as ExternalId)),
      touch('t5', at, 'split', 'A', 'click', sdkVisitor('sh', 'op:u1' as ExternalId)),
    ];
    expect(attributeConversion(conversion('2026-11-30T12:00:00.000Z', 80, shopUser), others, THIRTY_DAYS)).toEqual([]);
    const own = touch('t6', at, 'own', 'A', 'click', shopUser);
    expect(
      creditsUnder('linear', attributeConversion(conversion('2026-11-30T12:00:00.000Z', 80, shopUser), [...others, own], THIRTY_DAYS)),
    ).toEqual({
      'own@A': [1, 80],
    });
  });

  it('a shorter lookback window leaves older touches out', () => {
    const credits = attributeConversion(
      converted,
      [touch('t1', '2026-11-20T00:00:00.000Z', 'c1', 'A'), touch('t2', '2026-11-29T00:00:00.000Z', 'c2', 'B')],
      lookbackOfDays(7),
    );
    expect(creditsUnder('first_touch', credits)).toEqual({ 'c2@B': [1, 80] });
  });
});

describe('the lookback window', () => {
  it.each([0, -1, 1.5, 3651, Number.NaN])('refuses %s days', (days) => {
    expect(() => lookbackOfDays(days)).toThrow(ValidationError);
  });
});

describe('crediting a conversion: a long journey', () => {
  // 120 touches of 120 campaigns in the window: the first and the latest 49 are credited, 50 in all.
  const converted = conversion('2026-11-30T12:00:00.000Z', 100);
  const touches = Array.from({ length: 120 }, (_, i) =>
    touch(`t${i}`, new Date(Date.parse('2026-11-20T00:00:00.000Z') + i * 60_000).toISOString(), `c${i}`, 'A'),
  );
  const credits = attributeConversion(converted, touches, THIRTY_DAYS);

  it('keeps first touch and last touch exact', () => {
    expect(creditsUnder('first_touch', credits)).toEqual({ 'c0@A': [1, 100] });
    expect(creditsUnder('last_touch', credits)).toEqual({ 'c119@A': [1, 100] });
  });

  it(`shares linear and position-based among the first touch and the latest ${MAX_TOUCHES_CREDITED - 1}`, () => {
    const linear = creditsUnder('linear', credits);
    expect(Object.keys(linear)).toHaveLength(MAX_TOUCHES_CREDITED);
    expect(linear['c0@A']).toEqual([0.02, 2]);
    expect(linear['c71@A']).toEqual([0.02, 2]);
    expect(linear['c70@A']).toBeUndefined();
    const positions = creditsUnder('position_based', credits);
    expect([positions['c0@A'], positions['c119@A'], positions['c71@A']]).toEqual([
      [0.4, 40],
      [0.4, 40],
      [0.2 / 48, (0.2 / 48) * 100].map((n) => Math.round(n * 1e9) / 1e9),
    ]);
  });
});
