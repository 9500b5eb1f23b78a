import type { Clock } from '../../shared/clock.js';
import { ValidationError } from '../../shared/errors.js';
import type { EventStore, StoreTransaction } from '../../shared/event-store/event-store.js';
import type { IdGenerator } from '../../shared/ids.js';
import type { NewEvent } from '../../shared/events.js';
import {
  dataStreamId,
  decideIngest,
  initialState,
  itemFromCommand,
  type IngestDataCommand,
  type IngestedItem,
} from '../domain/ingested-data.js';
import type { EnsureSource, IdempotencyLogFor, RouteEvent, RoutingSummary } from './ports.js';

export interface IngestDataDeps {
  readonly store: EventStore;
  readonly clock: Clock;
  readonly newId: IdGenerator;
  /** Without it, no rules are evaluated (rules_evaluated: 0). */
  readonly route?: RouteEvent;
  readonly ensureSource?: EnsureSource;
  readonly idempotency?: IdempotencyLogFor;
  /** How long an idempotency key is remembered. */
  readonly idempotencyWindowMs?: number;
}

export interface Ingested {
  readonly item: IngestedItem;
  readonly routing: RoutingSummary;
}

export interface Receipt {
  readonly eventId: string;
  readonly routing: RoutingSummary;
  /** True when an earlier request with the same idempotency key already stored the event. */
  readonly duplicate: boolean;
}

const NO_RULES: RoutingSummary = { rules_evaluated: 0, rules_matched: 0, rules_executed: 0 };
const DAY_MS = 24 * 3600 * 1000;

interface Prepared {
  readonly item: IngestedItem;
  readonly routing: RoutingSummary;
  readonly events: NewEvent[];
}

/** Validates the command into an item, makes sure its source exists, and evaluates the routing rules. */
async function prepare(deps: IngestDataDeps, command: IngestDataCommand): Promise<Prepared> {
  const item = itemFromCommand(command, deps.newId(), deps.clock.now());
  await deps.ensureSource?.(item.partnerId);
  const decision =
    deps.route &&
    (await deps.route({ app_id: item.partnerId, event_type: item.eventType, payload: item.payload, metadata: item.metadata }));
  const routing = decision ? { rules_evaluated: decision.summary.rules_evaluated, matched_rule_ids: decision.matchedRuleIds } : undefined;
  const metadata = { schema_version: 1, ...(item.metadata.correlation_id ? { correlationId: item.metadata.correlation_id } : {}) };
  const events = decideIngest(item, initialState, routing).map((event) => ({ ...event, metadata }));
  return { item, routing: decision?.summary ?? NO_RULES, events };
}

/** Stores one item; resolves once it is durable, so the caller may acknowledge it. */
export const ingestData =
  (deps: IngestDataDeps) =>
  async (command: IngestDataCommand): Promise<Ingested> => {
    const prepared = await prepare(deps, command);
    await deps.store.append({ streamId: dataStreamId(prepared.item.id), events: prepared.events, expectedVersion: 'no_stream' });
    return { item: prepared.item, routing: prepared.routing };
  };

/**
 * Stores one event at most once per idempotency key: the key is checked and recorded in the
 * transaction that appends the event, so concurrent retries cannot both store it.
 */
export const ingestEvent =
  (deps: IngestDataDeps) =>
  async (command: IngestDataCommand, idempotencyKey?: string): Promise<Receipt> => {
    if (idempotencyKey === undefined) {
      const { item, routing } = await ingestData(deps)(command);
      return { eventId: item.id, routing, duplicate: false };
    }
    const prepared = await prepare(deps, command);
    return deps.store.transaction((tx) => appendOnce(deps, tx, prepared, idempotencyKey));
  };

export type BatchReceipt =
  | { readonly index: number; readonly status: 'accepted'; readonly eventId: string; readonly routing: RoutingSummary }
  | { readonly index: number; readonly status: 'duplicate'; readonly eventId: string }
  | { readonly index: number; readonly status: 'rejected'; readonly reason: string; readonly errors: ValidationError['violations'] };

/**
 * Stores a batch in one transaction, with a receipt per event: one bad event is rejected alone and
 * never drops the others; an event whose `message_id` was seen is a duplicate of the first.
 */
export const ingestBatch =
  (deps: IngestDataDeps) =>
  async (commands: ReadonlyArray<{ command: IngestDataCommand; messageId?: string }>): Promise<BatchReceipt[]> => {
    type Entry = { index: number; messageId?: string; prepared: Prepared } | { index: number; error: ValidationError };
    const prepared = await Promise.all(
      commands.map(async ({ command, messageId }, index): Promise<Entry> => {
        try {
          return { index, messageId, prepared: await prepare(deps, command) };
        } catch (error) {
          if (error instanceof ValidationError) return { index, error };
          throw error;
        }
      }),
    );
    return deps.store.transaction(async (tx) => {
      const receipts: BatchReceipt[] = [];
      for (const entry of prepared) {
        if ('error' in entry) {
          receipts.push({ index: entry.index, status: 'rejected', reason: entry.error.message, errors: entry.error.violations });
        } else if (entry.messageId === undefined) {
          await tx.append({ streamId: dataStreamId(entry.prepared.item.id), events: entry.prepared.events, expectedVersion: 'no_stream' });
          receipts.push({ index: entry.index, status: 'accepted', eventId: entry.prepared.item.id, routing: entry.prepared.routing });
        } else {
          const receipt = await appendOnce(deps, tx, entry.prepared, entry.messageId);
          receipts.push(
            receipt.duplicate
              ? { index: entry.index, status: 'duplicate', eventId: receipt.eventId }
              : { index: entry.index, status: 'accepted', eventId: receipt.eventId, routing: receipt.routing },
          );
        }
      }
      return receipts;
    });
  };

async function appendOnce(deps: IngestDataDeps, tx: StoreTransaction, prepared: Prepared, key: string): Promise<Receipt> {
  if (!deps.idempotency) throw new Error('idempotency keys need an idempotency log');
  const log = deps.idempotency(tx.db);
  const now = deps.clock.now();
  const notBefore = new Date(now.getTime() - (deps.idempotencyWindowMs ?? DAY_MS)).toISOString();
  const appId = prepared.item.partnerId;
  const first = await log.find(appId, key, notBefore);
  if (first) return { eventId: first.eventId, routing: first.routing, duplicate: true };
  await tx.append({ streamId: dataStreamId(prepared.item.id), events: prepared.events, expectedVersion: 'no_stream' });
  await log.remember(appId, key, { eventId: prepared.item.id, routing: prepared.routing }, now.toISOString());
  return { eventId: prepared.item.id, routing: prepared.routing, duplicate: false };
}
