import type { Kysely } from 'kysely';
import type { Page, PageRequest } from '../../shared/pagination.js';
import type { WorkBudget } from '../../shared/work-budget.js';
import type { IngestedItem } from '../domain/ingested-data.js';
import type { ItemStatus } from '../domain/item-status.js';

/** An item of the ingestion view with where it stands in the pipeline. */
export type ItemWithStatus = IngestedItem & { readonly status: ItemStatus };

/**
 * The ingestion context's own view of its items: written by an inline projection (so a GET right after
 * the POST finds the item), its status moved on by the pipeline's events (itemStatusSubscriber).
 */
export interface IngestedItemsView {
  byId(id: string): Promise<ItemWithStatus | undefined>;
  list(filter: { readonly partnerId?: string }, page: PageRequest): Promise<Page<ItemWithStatus>>;
}

/** The status column of the view, as its subscriber writes it inside its checkpoint's transaction. */
export interface ItemStatuses {
  /** Moves each item to its status unless it is already there or further. */
  advance(statuses: ReadonlyMap<string, ItemStatus>): Promise<void>;
  /** Every item back to `ingested`, before a replay. */
  reset(): Promise<void>;
}

export type ItemStatusesFor = (db: Kysely<object>) => ItemStatuses;

export interface RoutingSummary {
  readonly rules_evaluated: number;
  readonly rules_matched: number;
  readonly rules_executed: number;
  /** Routing is not running here (`INTAKE_DISABLE`): it decides for the item once it runs again. */
  readonly deferred?: true;
}

/**
 * Routing's rule evaluation, run on the ingest path so the response can tell what matched. The events
 * of one request share `request`, the work they may make the thread do; a ValidationError refuses
 * an event whose rules would cost too much.
 */
export type RouteEvent = (
  event: { app_id: string; event_type: string; payload: object; metadata: object },
  request?: WorkBudget,
) => Promise<{
  readonly summary: RoutingSummary;
  readonly matchedRuleIds: string[];
}>;

/** Creates a source the first time the admin writes as it. */
export type EnsureSource = (appId: string) => Promise<void>;

export interface FirstResult {
  readonly eventId: string;
  readonly routing: RoutingSummary;
  /** What the first request asked for, when its key must not be reused for another (`Idempotency-Key`). */
  readonly fingerprint?: string;
  /** Recorded before records told a request's key from a message's id: it answers a key of either kind. */
  readonly kindUnknown?: true;
}

/** Durable record of idempotency keys: a retried request returns its first result. */
export interface IdempotencyLog {
  /** The first results of these keys of one application, for those recorded after `notBefore`. */
  findMany(appId: string, keys: readonly string[], notBefore: string): Promise<Map<string, FirstResult>>;
  /**
   * Records the first results of keys that have none since `notBefore` (a key past its window is
   * reused, its old record replaced) and answers the keys it recorded. A key a concurrent transaction
   * is recording is not: the claim waits for that transaction, and it has the key if it commits.
   */
  claimMany(
    appId: string,
    entries: ReadonlyArray<{ readonly key: string; readonly result: FirstResult }>,
    at: string,
    notBefore: string,
  ): Promise<Set<string>>;
  /** Deletes up to `limit` records made before `notBefore`, the oldest first; answers how many it deleted. */
  forgetBefore(notBefore: string, limit: number): Promise<number>;
}

export type IdempotencyLogFor = (db: Kysely<object>) => IdempotencyLog;
