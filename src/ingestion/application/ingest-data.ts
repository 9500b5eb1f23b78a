import { fingerprintOf, sha256 } from '../../shared/fingerprint.js';
import type { Clock } from '../../shared/clock.js';
import { ValidationError } from '../../shared/errors.js';
import type { EventStore } from '../../shared/event-store/event-store.js';
import type { IdGenerator } from '../../shared/ids.js';
import type { NewEvent } from '../../shared/events.js';
import { STEPS_PER_REQUEST, workBudget, type WorkBudget } from '../../shared/work-budget.js';
import { threadSlice } from '../../shared/yielding.js';
import { DEFAULT_EVENT_TYPE } from '../domain/values.js';
import {
  dataStreamId,
  decideIngest,
  initialState,
  itemFromCommand,
  type IngestDataCommand,
  type IngestedItem,
} from '../domain/ingested-data.js';
import type { EnsureSource, FirstResult, IdempotencyLogFor, RouteEvent, RoutingSummary } from './ports.js';

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
  /** Where keyed and batched events are committed (the storage thread's procedure); built from the above when absent. */
  readonly commit?: CommitPrepared;
  /** How long preparing a batch's events holds the thread before others get it (tests pause at every event). */
  readonly sliceMs?: number;
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

const DEFERRED: RoutingSummary = { rules_evaluated: 0, rules_matched: 0, rules_executed: 0, deferred: true };
/** How long a key is remembered unless configured (IDEMPOTENCY_WINDOW_HOURS). */
export const IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000;

export interface Prepared {
  readonly item: IngestedItem;
  readonly routing: RoutingSummary;
  readonly events: NewEvent[];
}

/**
 * Validates the command into an item, makes sure its source exists, and evaluates the routing rules
 * (within `request`, the work budget of the request the command came in, when it shares one).
 */
async function prepare(deps: IngestDataDeps, command: IngestDataCommand, request?: WorkBudget): Promise<Prepared> {
  const item = itemFromCommand(command, deps.newId(), deps.clock.now());
  await deps.ensureSource?.(item.partnerId).catch((error: unknown) => {
    // A source new to Intake becomes an application, whose id rules are stricter: the partner API calls it partner_id.
    if (!(error instanceof ValidationError) || command.channel !== 'partner_api') throw error;
    const named = error.violations.map((v) => (v.path === 'app_id' ? { ...v, path: 'partner_id' } : v));
    throw new ValidationError(error.code, error.message.replace(/^app_id\b/, 'partner_id'), named);
  });
  const decision =
    deps.route &&
    (await deps.route({ app_id: item.partnerId, event_type: item.eventType, payload: item.payload, metadata: item.metadata }, request));
  // Without routing running, the item says so: routing decides for it once it runs again.
  const routing = decision
    ? { rules_evaluated: decision.summary.rules_evaluated, matched_rule_ids: decision.matchedRuleIds }
    : { rules_evaluated: 0, matched_rule_ids: [], deferred: true as const };
  const metadata = { schema_version: 1, ...(item.metadata.correlation_id ? { correlationId: item.metadata.correlation_id } : {}) };
  const events = decideIngest(item, initialState, routing).map((event): NewEvent => ({ type: event.type, data: event.data, metadata }));
  return { item, routing: decision?.summary ?? DEFERRED, events };
}

/** Stores one item; resolves once it is durable, so the caller may acknowledge it. */
export const ingestData =
  (deps: IngestDataDeps) =>
  async (command: IngestDataCommand): Promise<Ingested> => {
    const prepared = await prepare(deps, command);
    await deps.store.append({
      streamId: dataStreamId(prepared.item.id),
      events: prepared.events,
      expectedVersion: 'no_stream',
      source: prepared.item.partnerId,
    });
    return { item: prepared.item, routing: prepared.routing };
  };

/** What the storage side tells of each prepared event it was given. */
export type Committed =
  | { readonly status: 'accepted'; readonly eventId: string; readonly routing: RoutingSummary }
  | { readonly status: 'duplicate'; readonly eventId: string; readonly routing: RoutingSummary }
  /** The key's first request asked for something else: nothing is stored, and this is no retry. */
  | { readonly status: 'key-reused'; readonly eventId: string; readonly routing: RoutingSummary };

/**
 * An idempotency key and what it guards. A client's `Idempotency-Key` names one request: sent again
 * with another event it is refused. A message's own id (`message_id`, Segment's `messageId`) names the
 * message, and a copy of it is a duplicate whatever else changed.
 */
export interface IdempotencyKey {
  readonly key: string;
  readonly sameRequestOnly: boolean;
  /** Derived by the batch endpoint from its `Idempotency-Key` and the event's place in the batch (`K#3`). */
  readonly derived?: boolean;
}

/**
 * Each kind of key is stored under a prefix of its own: a message id never answers for a request's key,
 * nor a batch's derived key for another request's own. Kept together, the first use of a string decided
 * for every kind, and an unrelated event sent under the other kind was dropped as its duplicate.
 */
const storedKeyOf = (key: IdempotencyKey) => `${key.sameRequestOnly ? (key.derived ? 'b' : 'r') : 'm'}:${key.key}`;
/**
 * The key as a release before prefixes stored it. A key that itself begins like a stored one has no
 * such form to look up: message id `m:X` would find the record of message id `X`.
 */
const legacyKeyOf = (key: IdempotencyKey) => (/^[mrb]:/.test(key.key) ? {} : { legacyKey: key.key });

/**
 * What an event asks to store, for telling a retry from another request under the same key
 * (`fingerprintOf`): its type as stored, so that `event_type` left out and `"data"` (its default) are
 * one request. Records of earlier releases hold other forms, which `alsoMatches` accepts while they
 * last: the type as sent (null when left out), and before keys were put in order, the JSON text's digest.
 */
function fingerprintsOf(item: IngestedItem, command: IngestDataCommand): { fingerprint: string; alsoMatches?: readonly string[] } {
  const payload = command.payload ?? null;
  const fingerprint = fingerprintOf([item.eventType, payload]);
  const types = item.eventType === DEFAULT_EVENT_TYPE ? [item.eventType, null] : [item.eventType];
  const alsoMatches = [
    ...new Set(types.flatMap((type) => [fingerprintOf([type, payload]), sha256(JSON.stringify([type, payload]))])),
  ].filter((other) => other !== fingerprint);
  return alsoMatches.length > 0 ? { fingerprint, alsoMatches } : { fingerprint };
}

/** A prepared item as the storage side commits it: where it goes, its receipt, its events and its key. */
export interface ToCommit<Event = NewEvent> {
  readonly appId: string;
  readonly itemId: string;
  readonly routing: RoutingSummary;
  readonly events: readonly Event[];
  /** The key as stored (`storedKeyOf`). */
  readonly key?: string;
  /** The key as a release before prefixes stored it, looked up for a retry that spans the upgrade. */
  readonly legacyKey?: string;
  /** With a key that names one request: what it asked for (see `IdempotencyKey`). */
  readonly fingerprint?: string;
  /** The same as releases before took it, where it differs (`fingerprintsOf`). */
  readonly alsoMatches?: readonly string[];
}

const toCommit = (prepared: Prepared, command: IngestDataCommand, key: IdempotencyKey | undefined): ToCommit => ({
  appId: prepared.item.partnerId,
  itemId: prepared.item.id,
  routing: prepared.routing,
  events: prepared.events,
  ...(key === undefined ? {} : { key: storedKeyOf(key), ...legacyKeyOf(key) }),
  ...(key?.sameRequestOnly ? fingerprintsOf(prepared.item, command) : {}),
});

/** Appends prepared events in one transaction; one with a key is stored at most once per key. */
export type CommitPrepared = (entries: readonly ToCommit[]) => Promise<Committed[]>;

export interface CommitDeps {
  readonly store: EventStore;
  readonly clock: Clock;
  readonly idempotency: IdempotencyLogFor;
  readonly idempotencyWindowMs?: number;
}

/**
 * The storage side of keyed and batched ingestion: keys are checked and recorded in the
 * transaction that appends their events, so concurrent retries cannot both store one. Events
 * without a key go in one multi-row append.
 */
export const commitPrepared =
  (deps: CommitDeps): CommitPrepared =>
  (entries) =>
    deps.store
      .transaction(async (tx) => {
        const log = deps.idempotency(tx.db);
        const now = deps.clock.now();
        const notBefore = new Date(now.getTime() - (deps.idempotencyWindowMs ?? IDEMPOTENCY_WINDOW_MS)).toISOString();
        // Keys are looked up and recorded per application, a few statements for the whole batch.
        const firsts = new Map<string, FirstResult>();
        const keysByApp = new Map<string, Set<string>>();
        for (const { appId, key, legacyKey } of entries) {
          if (key === undefined) continue;
          const keys = keysByApp.get(appId) ?? new Set();
          keys.add(key);
          if (legacyKey !== undefined) keys.add(legacyKey);
          keysByApp.set(appId, keys);
        }
        // A record counts for a key of its own kind only: request keys are stored with a fingerprint,
        // message ids without (which also tells the kind of a record stored before prefixes). One stored
        // before fingerprints, whose kind nobody knows, answers either.
        const firstOf = (app: string, key: string | undefined, fingerprint: string | undefined) => {
          const first = key === undefined ? undefined : firsts.get(scoped(app, key));
          return first && (first.kindUnknown || (first.fingerprint !== undefined) === (fingerprint !== undefined)) ? first : undefined;
        };
        for (const [app, keys] of keysByApp) {
          for (const [key, first] of await log.findMany(app, [...keys], notBefore)) firsts.set(scoped(app, key), first);
        }
        // Each key without a first result is claimed before anything is appended: a concurrent request
        // with the same key (another process, or another connection on PostgreSQL) then either waits and
        // loses it, its event a duplicate of the winner's, or never saw it.
        const claims = new Map<string, Array<{ key: string; result: FirstResult }>>();
        const plans = entries.map((entry) => {
          const { appId: app, key, fingerprint } = entry;
          const result: FirstResult = { eventId: entry.itemId, routing: entry.routing, ...(fingerprint ? { fingerprint } : {}) };
          const claim = key !== undefined && !(firstOf(app, key, fingerprint) ?? firstOf(app, entry.legacyKey, fingerprint));
          if (claim) {
            // A second copy within this batch is a duplicate of the first.
            firsts.set(scoped(app, key), result);
            const rows = claims.get(app) ?? [];
            rows.push({ key, result });
            claims.set(app, rows);
          }
          return { entry, result, claim };
        });
        const lost = new Set<string>();
        for (const [app, rows] of claims) {
          const won = await log.claimMany(app, rows, now.toISOString(), notBefore);
          const taken = rows.filter(({ key }) => !won.has(key)).map(({ key }) => key);
          if (taken.length === 0) continue;
          for (const [key, first] of await log.findMany(app, taken, notBefore)) {
            firsts.set(scoped(app, key), first);
            lost.add(scoped(app, key));
          }
        }
        const committed: Committed[] = [];
        const appended: ToCommit[] = [];
        for (const { entry, result, claim } of plans) {
          const { appId: app, key, fingerprint } = entry;
          const won = claim && key !== undefined && !lost.has(scoped(app, key));
          const first =
            key === undefined || won ? undefined : (firstOf(app, key, fingerprint) ?? firstOf(app, entry.legacyKey, fingerprint));
          if (first) {
            const reused =
              fingerprint !== undefined &&
              first.fingerprint !== undefined &&
              first.fingerprint !== fingerprint &&
              !(entry.alsoMatches ?? []).includes(first.fingerprint);
            committed.push({ status: reused ? 'key-reused' : 'duplicate', eventId: first.eventId, routing: first.routing });
            continue;
          }
          appended.push(entry);
          committed.push({ status: 'accepted', eventId: result.eventId, routing: result.routing });
        }
        await tx.appendMany(
          appended.map((entry) => ({
            streamId: dataStreamId(entry.itemId),
            events: entry.events,
            expectedVersion: 'no_stream' as const,
          })),
        );
        return committed;
      })
      .then(async (committed) => {
        // A duplicate is answered with the first request's id: that commit may not be synced yet.
        if (committed.some((c) => c.status !== 'accepted')) await deps.store.durable?.();
        return committed;
      });

const scoped = (app: string, key: string) => `${app}\n${key}`;

/** A key sent again with another event than its first. */
function keyReused(key: string, eventId: string): ValidationError {
  return new ValidationError(
    'ingestion.idempotency-key-reused',
    `Idempotency-Key "${key}" was sent with another event (stored as ${eventId}) within the idempotency window; a new event needs a new key`,
    [{ path: 'Idempotency-Key', message: 'was sent with another request' }],
  );
}

/** Stores one event at most once per idempotency key. */
export const ingestEvent =
  (deps: IngestDataDeps) =>
  async (command: IngestDataCommand, idempotencyKey?: IdempotencyKey): Promise<Receipt> => {
    if (idempotencyKey === undefined) {
      const { item, routing } = await ingestData(deps)(command);
      return { eventId: item.id, routing, duplicate: false };
    }
    const prepared = await prepare(deps, command);
    const [committed] = await commitWith(deps)([toCommit(prepared, command, idempotencyKey)]);
    if (!committed) throw new Error('no result for the event');
    if (committed.status === 'key-reused') throw keyReused(idempotencyKey.key, committed.eventId);
    return { eventId: committed.eventId, routing: committed.routing, duplicate: committed.status === 'duplicate' };
  };

export type BatchReceipt =
  | { readonly index: number; readonly status: 'accepted'; readonly eventId: string; readonly routing: RoutingSummary }
  | { readonly index: number; readonly status: 'duplicate'; readonly eventId: string }
  | {
      readonly index: number;
      readonly status: 'rejected';
      /** The refusal's code (`routing.rules-too-costly`, `ingestion.idempotency-key-reused`…). */
      readonly code: string;
      readonly reason: string;
      readonly errors: ValidationError['violations'];
    };

/** A batch's event: its command and, when it has one, the key it is stored under at most once. */
export interface BatchEvent {
  readonly command: IngestDataCommand;
  /** The message's own id: a copy is a duplicate. */
  readonly messageId?: string;
  /** A key derived from the request's `Idempotency-Key`: sent with another event, it is refused. */
  readonly requestKey?: string;
  /** Why the edge refused the event (a `message_id` that is no id): it is rejected alone. */
  readonly refused?: ValidationError;
}

/**
 * Stores a batch in one transaction, with a receipt per event: one bad event is rejected alone and
 * never drops the others; an event whose `message_id` was seen is a duplicate of the first.
 */
export const ingestBatch =
  (deps: IngestDataDeps) =>
  async (commands: readonly BatchEvent[]): Promise<BatchReceipt[]> => {
    type Entry =
      { index: number; key?: IdempotencyKey; command: IngestDataCommand; prepared: Prepared } | { index: number; error: ValidationError };
    const keyOf = ({ messageId, requestKey }: BatchEvent): IdempotencyKey | undefined =>
      messageId !== undefined
        ? { key: messageId, sameRequestOnly: false }
        : requestKey !== undefined
          ? { key: requestKey, sameRequestOnly: true, derived: true }
          : undefined;
    // One after another, within one budget: the rule evaluation of a batch pauses between events to
    // let other requests in, and an event that would take more than is left is rejected alone.
    const request = workBudget(STEPS_PER_REQUEST);
    const entries: Entry[] = [];
    const slice = threadSlice(deps.sliceMs);
    for (const [index, event] of commands.entries()) {
      if (slice.spent) await slice.pause();
      try {
        if (event.refused) throw event.refused;
        const key = keyOf(event);
        entries.push({ index, command: event.command, ...(key ? { key } : {}), prepared: await prepare(deps, event.command, request) });
      } catch (error) {
        if (!(error instanceof ValidationError)) throw error;
        entries.push({ index, error });
      }
    }
    const valid = entries.flatMap((entry) => ('error' in entry ? [] : [entry]));
    const committed =
      valid.length > 0 ? await commitWith(deps)(valid.map(({ prepared, command, key }) => toCommit(prepared, command, key))) : [];
    const byIndex = new Map(valid.map((entry, i) => [entry.index, { entry, result: committed[i] }]));
    return entries.map((entry): BatchReceipt => {
      if ('error' in entry) {
        return {
          index: entry.index,
          status: 'rejected',
          code: entry.error.code,
          reason: entry.error.message,
          errors: entry.error.violations,
        };
      }
      const { result } = byIndex.get(entry.index) ?? {};
      if (!result) throw new Error('no result for a batch entry');
      if (result.status === 'key-reused') {
        const refused = keyReused(entry.key?.key ?? '', result.eventId);
        return { index: entry.index, status: 'rejected', code: refused.code, reason: refused.message, errors: refused.violations };
      }
      return result.status === 'duplicate'
        ? { index: entry.index, status: 'duplicate', eventId: result.eventId }
        : { index: entry.index, status: 'accepted', eventId: result.eventId, routing: result.routing };
    });
  };

function commitWith(deps: IngestDataDeps): CommitPrepared {
  if (deps.commit) return deps.commit;
  if (!deps.idempotency) throw new Error('keyed and batched ingestion need an idempotency log');
  return commitPrepared({
    store: deps.store,
    clock: deps.clock,
    idempotency: deps.idempotency,
    idempotencyWindowMs: deps.idempotencyWindowMs,
  });
}
