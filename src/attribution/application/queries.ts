import { NotFoundError } from '../../shared/errors.js';
import type { Page, PageRequest } from '../../shared/pagination.js';
import { ATTRIBUTION_MODELS, type AttributionModel, type Credit } from '../domain/attribution-models.js';
import type { Conversion } from '../domain/conversion.js';
import { scoreOf, type InteractionCounts, type InteractionWeights } from '../domain/interaction-weights.js';
import type { Touch } from '../domain/touch.js';
import type { Visitor } from '../domain/values.js';
import type { AttributionViews, Scope } from './ports.js';

export interface ScopeAttribution {
  readonly scope: Scope;
  readonly model: AttributionModel;
  readonly interactions: InteractionCounts;
  readonly uniqueVisitors: number;
  readonly score: number;
  readonly conversions: number;
  readonly attributedValue: number;
}

export interface VisitorJourney {
  readonly visitor: Visitor;
  /** The anonymous ids known to be this SDK user, along chains of ties: their touches are the user's journey too. */
  readonly anonymousIds: readonly Visitor[];
  readonly firstTouch: Touch | null;
  readonly lastTouch: Touch | null;
  readonly conversions: number;
  readonly touches: Page<Touch>;
}

export interface ConversionAttribution {
  readonly conversion: Conversion;
  readonly credits: Readonly<Record<AttributionModel, Credit[]>>;
}

// Sums of shares such as 0.1 + 0.2 carry binary noise (0.30000000000000004); six decimals hide it
// and keep more precision than any currency needs.
/**
 * Six decimals, or as many as a double holds beside the value's whole digits (15 significant in all):
 * sums of credits near 10^12 differ below that between databases, which add them in another order.
 */
export const rounded = (value: number): number => {
  const unit = 10 ** decimalsFor(value);
  return Math.round(value * unit) / unit;
};

function decimalsFor(value: number): number {
  const whole = Math.abs(value) < 1 ? 1 : Math.floor(Math.log10(Math.abs(value))) + 1;
  return Math.max(0, Math.min(6, 15 - whole));
}

/**
 * Non-negative parts rounded as `rounded` rounds their sum, so that what is shown adds up to the sum
 * shown: each is cut down to the last decimal, and the units cutting lost go one each to the parts it
 * cut most (a conversion of 100 split three ways shows 33.333334, 33.333333 and 33.333333, not three
 * times 33.333333).
 */
export function apportioned(parts: readonly number[]): number[] {
  const unit = 10 ** decimalsFor(parts.reduce((sum, part) => sum + part, 0));
  const scaled = parts.map((part) => part * unit);
  const whole = scaled.map((part) => Math.floor(part));
  let left = Math.round(scaled.reduce((sum, part) => sum + part, 0)) - whole.reduce((sum, part) => sum + part, 0);
  const byCut = scaled
    .map((part, index) => ({ cut: part - (whole[index] ?? 0), index }))
    .sort((a, b) => b.cut - a.cut || a.index - b.index);
  for (const { index } of byCut) {
    if (left <= 0) break;
    whole[index] = (whole[index] ?? 0) + 1;
    left--;
  }
  return whole.map((part) => part / unit);
}

/**
 * A campaign's or partner's attribution. The score is computed here from the interaction counts, so
 * new weights apply to all past interactions at once, with no replay.
 */
export const getScopeAttribution =
  (views: AttributionViews, weights: InteractionWeights) =>
  async (scope: Scope, model: AttributionModel): Promise<ScopeAttribution> => {
    const totals = await views.totals(scope);
    if (!totals) throw new NotFoundError('attribution.scope-not-found', `no tracking events for ${scope.kind} ${scope.id} yet`);
    const credited = await views.credited(scope, model);
    return {
      scope,
      model,
      interactions: totals.interactions,
      uniqueVisitors: totals.uniqueVisitors,
      score: rounded(scoreOf(totals.interactions, weights)),
      conversions: rounded(credited.conversions),
      attributedValue: rounded(credited.value),
    };
  };

export const getVisitorJourney =
  (views: AttributionViews) =>
  async (visitor: Visitor, page: PageRequest): Promise<VisitorJourney> => {
    // The touches a user's conversions are credited from: their own and their anonymous ids', along chains of ties.
    const anonymousIds = visitor.appId === null ? [] : await views.anonymousIdsOf(visitor);
    const identities = [visitor, ...anonymousIds];
    const [firstTouch, lastTouch, conversions, touches] = await Promise.all([
      views.firstTouch(identities),
      views.lastTouch(identities),
      views.conversionCount(visitor),
      views.touches(identities, page),
    ]);
    if (!firstTouch && conversions === 0) {
      const whose = visitor.appId === null ? 'of the tracking API' : `of application ${visitor.appId}`;
      throw new NotFoundError('attribution.visitor-not-found', `no touches of visitor ${visitor.id} ${whose} yet`);
    }
    return { visitor, anonymousIds, firstTouch: firstTouch ?? null, lastTouch: lastTouch ?? null, conversions, touches };
  };

export const getConversionAttribution =
  (views: AttributionViews) =>
  async (conversionId: string): Promise<ConversionAttribution> => {
    const conversion = await views.conversion(conversionId);
    if (!conversion) throw new NotFoundError('attribution.conversion-not-found', `no attributed conversion with id ${conversionId} yet`);
    const credits = await views.creditsOf(conversionId);
    const byModel = Object.fromEntries(
      ATTRIBUTION_MODELS.map((model) => {
        const ofModel = credits.filter((c) => c.model === model);
        const shares = apportioned(ofModel.map((c) => c.share));
        const values = apportioned(ofModel.map((c) => c.value));
        return [model, ofModel.map((c, i) => ({ ...c, share: shares[i] ?? 0, value: values[i] ?? 0 }))];
      }),
    ) as Record<AttributionModel, Credit[]>;
    // Shown as its credits are, so that they add up to it: a value sent with more decimals than are kept
    // (1.0000005) had credits summing to more than itself.
    return { conversion: { ...conversion, value: rounded(conversion.value) }, credits: byModel };
  };
