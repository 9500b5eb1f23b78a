import type { ContextModule, ContextTables, ModuleDeps } from '../shared/context-module.js';
import { attributionSubscriber } from './application/attribution-subscriber.js';
import { getConversionAttribution, getScopeAttribution, getVisitorJourney } from './application/queries.js';
import { recordConversion } from './application/record-conversion.js';
import { attributionHttp } from './adapters/http/attribution-routes.js';
import { attributionMigrations } from './adapters/sql/migrations.js';
import { sqlAttributionLedger } from './adapters/sql/sql-attribution-ledger.js';
import { sqlAttributionViews } from './adapters/sql/sql-attribution-views.js';
import { parseConversionEvents, parseIgnoredReferrers, type ConversionEvents } from './domain/analytics-message.js';
import { DEFAULT_LOOKBACK_DAYS, lookbackOfDays } from './domain/attribution-models.js';
import { DEFAULT_WEIGHTS, parseWeights, weightsOf } from './domain/interaction-weights.js';
import { messageOf } from '../shared/errors.js';

export const attributionTables: ContextTables = { migrations: [attributionMigrations] };

export interface AttributionOptions {
  /** Score weight of each interaction type; types left out keep their default (view 1, click 3, engagement 5). */
  readonly weights?: Readonly<Record<string, number>>;
  /** How many days before a conversion a touch still earns a share of it (default 30). Changing it needs a replay. */
  readonly lookbackDays?: number;
  /** Tracking-API track events counted as conversions, with their value property (default `Order Completed` → `revenue`). */
  readonly conversionEvents?: ConversionEvents;
  /** Referring hosts (and their subdomains) whose visits are no touches, such as payment pages. */
  readonly ignoredReferrers?: readonly string[];
}

/**
 * Options from the environment: `ATTRIBUTION_WEIGHTS=view=1,click=3,engagement=5` and
 * `ATTRIBUTION_LOOKBACK_DAYS=30`, `ATTRIBUTION_CONVERSION_EVENTS=Order Completed=revenue`,
 * `ATTRIBUTION_IGNORED_REFERRERS=paypal.com,checkout.stripe.com`. A malformed value stops the start, naming the variable, instead of being ignored.
 */
export function attributionOptionsFromEnv(env: NodeJS.ProcessEnv): AttributionOptions {
  const weights = env.ATTRIBUTION_WEIGHTS?.trim();
  const lookback = env.ATTRIBUTION_LOOKBACK_DAYS?.trim();
  const conversions = env.ATTRIBUTION_CONVERSION_EVENTS?.trim();
  const ignored = env.ATTRIBUTION_IGNORED_REFERRERS?.trim();
  const options: {
    weights?: AttributionOptions['weights'];
    lookbackDays?: number;
    conversionEvents?: ConversionEvents;
    ignoredReferrers?: readonly string[];
  } = {};
  if (ignored) options.ignoredReferrers = fromEnv('ATTRIBUTION_IGNORED_REFERRERS', () => parseIgnoredReferrers(ignored));
  if (conversions) options.conversionEvents = fromEnv('ATTRIBUTION_CONVERSION_EVENTS', () => parseConversionEvents(conversions));
  if (weights) options.weights = fromEnv('ATTRIBUTION_WEIGHTS', () => parseWeights(weights));
  if (lookback) {
    // Decimal digits only, as every other integer setting: Number() would take 0x10 or 1e3.
    const days = /^\d+$/.test(lookback.trim()) ? Number(lookback) : undefined;
    if (days === undefined)
      throw new Error(`ATTRIBUTION_LOOKBACK_DAYS: must be a whole number of days from 1 to 3650 (got ${JSON.stringify(lookback)})`);
    // Checked here too, so that the error names the variable.
    fromEnv('ATTRIBUTION_LOOKBACK_DAYS', () => lookbackOfDays(days));
    options.lookbackDays = days;
  }
  return options;
}

function fromEnv<T>(name: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new Error(`${name}: ${messageOf(error)}`, { cause: error });
  }
}

export function attributionModule(
  { store, db, clock, newId }: ModuleDeps,
  options: AttributionOptions = attributionOptionsFromEnv(process.env),
): ContextModule {
  const weights = options.weights ? weightsOf(options.weights) : DEFAULT_WEIGHTS;
  const lookbackMs = lookbackOfDays(options.lookbackDays ?? DEFAULT_LOOKBACK_DAYS);
  const views = sqlAttributionViews(db);
  return {
    name: 'attribution',
    subscribers: [
      attributionSubscriber({
        ledger: sqlAttributionLedger,
        lookbackMs,
        conversionEvents: options.conversionEvents,
        ignoredReferrers: options.ignoredReferrers,
      }),
    ],
    http: [
      attributionHttp({
        recordConversion: recordConversion({ store, clock, newId }),
        scope: getScopeAttribution(views, weights),
        visitor: getVisitorJourney(views),
        conversion: getConversionAttribution(views),
      }),
    ],
  };
}
