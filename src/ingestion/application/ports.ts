import type { Kysely } from 'kysely';
import type { Page, PageRequest } from '../../shared/pagination.js';
import type { IngestedItem } from '../domain/ingested-data.js';

/** The ingestion context's own view of its items, kept in step with the log by an inline projection. */
export interface IngestedItemsView {
  byId(id: string): Promise<IngestedItem | undefined>;
  list(filter: { readonly partnerId?: string }, page: PageRequest): Promise<Page<IngestedItem>>;
}

export interface RoutingSummary {
  readonly rules_evaluated: number;
  readonly rules_matched: number;
  readonly rules_executed: number;
}

/** Routing's rule evaluation, run on the ingest path so the response can tell what matched. */
export type RouteEvent = (event: { app_id: string; event_type: string; payload: object; metadata: object }) => Promise<{
  readonly summary: RoutingSummary;
  readonly matchedRuleIds: string[];
}>;

/** Creates a source the first time the admin writes as it. */
export type EnsureSource = (appId: string) => Promise<void>;

export interface FirstResult {
  readonly eventId: string;
  readonly routing: RoutingSummary;
}

/** Durable record of idempotency keys: a retried request returns its first result. */
export interface IdempotencyLog {
  /** The first result for this key, if it was recorded after `notBefore`. */
  find(appId: string, key: string, notBefore: string): Promise<FirstResult | undefined>;
  remember(appId: string, key: string, result: FirstResult, at: string): Promise<void>;
}

export type IdempotencyLogFor = (db: Kysely<object>) => IdempotencyLog;
