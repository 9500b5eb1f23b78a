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
  const whole = Math.abs(value) < 1 ? 1 : Math.floor(Math.log10(Math.abs(value))) + 1;
  const decimals = Math.max(0, Math.min(6, 15 - whole));
  return Math.round(value * 10 ** decimals) / 10 ** decimals;
};

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
      ATTRIBUTION_MODELS.map((model) => [
        model,
        credits.filter((c) => c.model === model).map((c) => ({ ...c, share: rounded(c.share), value: rounded(c.value) })),
      ]),
    ) as Record<AttributionModel, Credit[]>;
    return { conversion, credits: byModel };
  };
