import type { Kysely } from 'kysely';
import type { RuleFields } from '../domain/routing-rule.js';

export interface StoredRule extends RuleFields {
  readonly rule_id: string;
  readonly created_at: string;
  readonly updated_at: string;
}

/** Routing's own table of rules, kept by an inline projection of the rule events. */
export interface RuleCatalog {
  get(ruleId: string): Promise<StoredRule | undefined>;
  listByApp(appId: string): Promise<StoredRule[]>;
}

/** Webhook signing secrets: needed in clear to sign, so kept apart from the log and never returned after creation. */
export interface SecretVault {
  get(ruleId: string): Promise<string | undefined>;
  set(ruleId: string, secret: string): Promise<void>;
}

export type DeliveryStatus = 'pending' | 'succeeded' | 'dead_lettered';
/**
 * The status every API shows, in the same words as the query view's: a stored `pending` delivery
 * that has already failed an attempt is `retrying` (waiting for its next one).
 */
export type DeliveryState = 'pending' | 'retrying' | 'succeeded' | 'dead_lettered';

export const deliveryState = (delivery: { readonly status: DeliveryStatus; readonly attempts: number }): DeliveryState =>
  delivery.status === 'pending' && delivery.attempts > 0 ? 'retrying' : delivery.status;

export interface Delivery {
  readonly deliveryId: string;
  readonly ruleId: string;
  readonly itemId: string;
  readonly appId: string;
  readonly eventType: string;
  readonly destinationType: string;
  readonly body: string;
  readonly status: DeliveryStatus;
  readonly attempts: number;
  readonly nextAttemptAt: string | null;
  readonly lastError: string | null;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface Attempt {
  readonly deliveryId: string;
  readonly attempt: number;
  readonly at: string;
  readonly outcome: string;
  readonly statusCode: number | null;
  readonly error: string | null;
  readonly durationMs: number;
}

export interface NewDelivery {
  readonly deliveryId: string;
  readonly ruleId: string;
  readonly itemId: string;
  readonly appId: string;
  readonly eventType: string;
  readonly destinationType: string;
  readonly body: string;
  readonly createdAt: string;
}

export interface DeliveryFilter {
  readonly itemId?: string;
  readonly ruleId?: string;
  readonly status?: DeliveryState;
  readonly limit: number;
}

/** Deliveries are stored, not timers in memory: retries survive restarts. */
export interface DeliveryStore {
  /** Inserts the deliveries that do not exist yet; returns the ids it inserted. */
  schedule(deliveries: readonly NewDelivery[]): Promise<string[]>;
  /** Leases up to `limit` due deliveries so no other worker takes them meanwhile. */
  claimDue(now: string, leaseUntil: string, limit: number): Promise<Delivery[]>;
  record(
    update: {
      deliveryId: string;
      status: DeliveryStatus;
      attempts: number;
      nextAttemptAt: string | null;
      lastError: string | null;
      at: string;
    },
    attempt: Attempt | undefined,
  ): Promise<void>;
  requeue(deliveryId: string, at: string): Promise<Delivery | undefined>;
  get(deliveryId: string): Promise<Delivery | undefined>;
  list(filter: DeliveryFilter): Promise<Delivery[]>;
  attemptsOf(deliveryId: string): Promise<Attempt[]>;
  /** When the next pending delivery falls due, to sleep exactly that long. */
  nextDueAt(): Promise<string | undefined>;
}

/** The `database` destination: rows in tables Intake created for that purpose. */
export interface DestinationTables {
  /** Refuses a name that belongs to something else (one of Intake's own tables, say). */
  assertUsable(table: string): Promise<void>;
  insert(
    table: string,
    row: { delivery_id: string; event_id: string; app_id: string; event_type: string; body: string; delivered_at: string },
  ): Promise<void>;
}

export type RuleCatalogFor = (db: Kysely<object>) => RuleCatalog;
export type SecretVaultFor = (db: Kysely<object>) => SecretVault;
export type DeliveryStoreFor = (db: Kysely<object>) => DeliveryStore;
export type DestinationTablesFor = (db: Kysely<object>) => DestinationTables;
