import type { Kysely } from 'kysely';
import type { Page, PageRequest } from '../../shared/pagination.js';
import type { ItemSnapshot } from '../../shared/contracts/data-events.js';
import type { Breaker } from '../domain/circuit-breaker.js';
import type { RuleFields } from '../domain/routing-rule.js';

export interface StoredRule extends RuleFields {
  readonly rule_id: string;
  readonly created_at: string;
  readonly updated_at: string;
}

/** Routing's own table of rules, kept by an inline projection of the rule events. */
export interface RuleCatalog {
  get(ruleId: string): Promise<StoredRule | undefined>;
  /** An application's rules in the order they run: highest priority first. */
  listByApp(appId: string): Promise<StoredRule[]>;
  /** The same a page at a time. A rule whose priority changes while a client pages moves with it. */
  pageByApp(appId: string, page: PageRequest): Promise<Page<StoredRule>>;
  /** Every application's rules by id, a page at a time. */
  listAll(page: PageRequest): Promise<Page<StoredRule>>;
  /**
   * How many rules an application has, active or not. `taking`: in a transaction that will add one,
   * whose concurrent peers for the same application wait for it (PostgreSQL; SQLite has one writer).
   */
  countByApp(appId: string, options?: { readonly taking?: boolean }): Promise<number>;
}

/**
 * Webhook signing secrets and destination credentials (header values, broker passwords): needed in
 * clear to sign and send, so sealed apart from the log and never returned after they are set.
 */
export interface SecretVault {
  /** The rule's current signing secret. */
  get(ruleId: string): Promise<string | undefined>;
  /** The secrets to sign with at `at`: the current one, then the one a rotation replaced while it is still honoured. */
  signingSecrets(ruleId: string, at: string): Promise<readonly string[]>;
  /** `keepPreviousUntil` (a rotation): the secret replaced goes on signing beside the new one until then. */
  set(ruleId: string, secret: string, keepPreviousUntil?: string): Promise<void>;
  /** The clear values of a rule's sealed credentials, by reference; one that is not there (or does not open) is left out. */
  openValues(ruleId: string, references: readonly string[]): Promise<Map<string, string>>;
  /** Seals credentials under their references (reference → clear value). */
  sealValues(ruleId: string, values: Readonly<Record<string, string>>): Promise<void>;
}

/** `cancelled`: a replay's delivery that its job's cancel withdrew before it was sent. */
export type DeliveryStatus = 'pending' | 'succeeded' | 'dead_lettered' | 'cancelled';
/**
 * The status every API shows, in the same words as the query view's: a stored `pending` delivery
 * that has already failed an attempt is `retrying` (waiting for its next one).
 */
export type DeliveryState = 'pending' | 'retrying' | 'succeeded' | 'dead_lettered' | 'cancelled';

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
  /** The value of the rule's ordering key in this event, when it has one. */
  readonly orderingKey: string | null;
  /** The routed event's place in the log: deliveries of one ordering key go in this order. */
  readonly position: number;
  readonly receivedAt: string;
  /** The id receivers see (`webhook-id`); the delivery id unless a replay kept or renewed another. */
  readonly webhookId: string;
  readonly replayJobId: string | null;
  /**
   * Attempts made before the delivery was last replayed from the dead-letter queue (0 if never): the
   * retry schedule starts over after them, and attempt numbers go on.
   */
  readonly earlierAttempts: number;
}

/** A delivery as lists show it: all but the body it sends. */
export type DeliverySummary = Omit<Delivery, 'body'>;

export interface Attempt {
  readonly deliveryId: string;
  readonly attempt: number;
  readonly at: string;
  readonly outcome: string;
  readonly statusCode: number | null;
  readonly error: string | null;
  readonly durationMs: number;
}

/**
 * The attempts to show for a delivery. One made in the transaction that scheduled it (a database
 * destination) stores no attempt row: its one attempt is the delivery itself. A worker's attempt always
 * leaves a row, so a delivery that succeeded at attempt 1 without one was made so.
 */
export function attemptsShown(delivery: Delivery, stored: readonly Attempt[]): readonly Attempt[] {
  if (stored.length > 0 || delivery.status !== 'succeeded' || delivery.attempts !== 1) return stored;
  return [
    {
      deliveryId: delivery.deliveryId,
      attempt: 1,
      at: delivery.updatedAt,
      outcome: 'delivered',
      statusCode: null,
      error: null,
      durationMs: 0,
    },
  ];
}

export interface NewDelivery {
  readonly deliveryId: string;
  readonly orderingKey: string | null;
  readonly position: number;
  readonly receivedAt: string;
  readonly webhookId?: string;
  readonly replayJobId?: string;
  readonly ruleId: string;
  readonly itemId: string;
  readonly appId: string;
  readonly eventType: string;
  readonly destinationType: string;
  readonly body: string;
  readonly createdAt: string;
  /** Set when the delivery was made as it was scheduled (a database destination): stored as succeeded, attempt 1. */
  readonly deliveredAt?: string;
}

export interface DeliveryFilter {
  readonly itemId?: string;
  readonly ruleId?: string;
  readonly status?: DeliveryState;
}

export interface ClaimRequest {
  readonly now: string;
  readonly leaseUntil: string;
  readonly limit: number;
  /** The worker taking the lease: after its restart, it takes back what it held. */
  readonly owner: string;
  /** Rules this worker cannot send to right now (as many attempts in flight as their circuit allows). */
  readonly excludeRules: readonly string[];
  /** The most one rule may take in a claim (its destination's share of the worker): the limit when absent. */
  readonly perRule?: number;
}

/**
 * Deliveries are stored, not timers in memory: retries survive restarts. A pending delivery is
 * claimable when it is due, not leased, its rule's circuit is not open (or is due a probe), and no
 * earlier delivery of its ordering key to the same rule is still pending.
 */
export interface DeliveryStore {
  /** Inserts the deliveries that do not exist yet; returns the ids it inserted. */
  schedule(deliveries: readonly NewDelivery[]): Promise<string[]>;
  /** Leases up to `limit` claimable deliveries, live ones before replays', so no other worker takes them meanwhile. */
  claimDue(request: ClaimRequest): Promise<Delivery[]>;
  /** Gives leases back without an attempt (held by the circuit breaker): the retry schedule is untouched. */
  release(deliveryIds: readonly string[], owner: string): Promise<void>;
  /**
   * Writes the attempt as in flight before it is sent, so the log shows every attempt a receiver may have
   * seen. False when another worker's attempt of that number is in flight: that worker stopped and its
   * lease ran out, and its attempt is left as it was.
   */
  beginAttempt(attempt: { deliveryId: string; attempt: number; at: string; worker: string }): Promise<boolean>;
  /** Takes back an attempt begun but never sent (the database failed before it went): no trace of it stays. */
  withdrawAttempt(attempt: { deliveryId: string; attempt: number }): Promise<void>;
  /** Attempts this worker left in flight when it stopped. */
  inFlightAttempts(worker: string): Promise<Array<{ deliveryId: string; attempt: number }>>;
  /** Leases this worker held when it stopped, given back at its restart. */
  releaseOwned(owner: string): Promise<void>;
  record(
    update: {
      deliveryId: string;
      /** Where the attempt went: its rule may have been pointed at another type of destination since it was made. */
      destinationType?: string;
      status: DeliveryStatus;
      attempts: number;
      nextAttemptAt: string | null;
      lastError: string | null;
      at: string;
    },
    attempt: Attempt | undefined,
  ): Promise<void>;
  /** A dead letter due again now, with the whole retry schedule ahead of it (its earlier attempts stay as they are). */
  requeue(deliveryId: string, at: string): Promise<Delivery | undefined>;
  get(deliveryId: string): Promise<Delivery | undefined>;
  /**
   * Newest first: by creation time, then id, both descending. Without the bodies, which no list shows:
   * a page of a thousand deliveries of 1 MB events would read a gigabyte.
   */
  list(filter: DeliveryFilter, page: PageRequest): Promise<Page<DeliverySummary>>;
  attemptsOf(deliveryId: string): Promise<Attempt[]>;
  /**
   * When the next claimable delivery not due yet falls due, to sleep exactly that long: those due now
   * were just claimed, or wait for a free slot (whose attempt's end wakes the worker).
   */
  nextDueAt(now: string, excludeRules: readonly string[]): Promise<string | undefined>;
  /** Pending deliveries of these rules. */
  pendingByRule(ruleIds: readonly string[]): Promise<Map<string, number>>;
  /** A rule's own deliveries (not replays) of events received in [from, to], in log order after the cursor. */
  window(
    ruleId: string,
    window: { from: string; to: string },
    after: { position: number; deliveryId: string },
    limit: number,
  ): Promise<Delivery[]>;
  countWindow(ruleId: string, window: { from: string; to: string }): Promise<number>;
  /** The id receivers saw for each of these items' own deliveries (not replays) by the rule, where there is one. */
  webhookIdsOf(ruleId: string, itemIds: readonly string[]): Promise<Map<string, string>>;
  /**
   * A rule's deliveries waiting for a later attempt become due at `at`, keeping their attempts and ids:
   * the rule's destination changed, and the wait (a backoff, a Retry-After) was the former one's. Those
   * being attempted now are left to their attempt, which records after this and finds the new destination.
   * Answers how many became due.
   */
  dueAgain(ruleId: string, at: string): Promise<number>;
  /**
   * At most `limit` of a deleted rule's deliveries that wait (pending or retrying, not being attempted
   * now) are dead-lettered with `reason`, no attempt made; answered as they are after it. One being
   * attempted is left to its attempt, which gives it up as it records (the rule is gone then).
   */
  deadLetterWaiting(ruleId: string, at: string, reason: string, limit: number): Promise<DeliverySummary[]>;
  /** A replay job's deliveries by status. */
  countByJob(jobId: string): Promise<Record<DeliveryStatus, number>>;
  /** Withdraws a job's deliveries that are not being sent. */
  cancelJob(jobId: string, at: string): Promise<number>;
}

/**
 * One circuit per rule, about the destination it was last set for (`destination`, a key from
 * `destinationKeyOf`): an attempt to a destination the rule has left since is not its business.
 */
export interface BreakerStore {
  get(ruleIds: readonly string[]): Promise<Map<string, Breaker>>;
  /**
   * The rule's circuit, held until the transaction ends: attempts finishing at once each count their
   * outcome on what the one before wrote (on PostgreSQL they read the same count, and a destination
   * that went down took four times the threshold of failures to open its circuit). A rule without a
   * circuit yet gets a closed one first, for there to be a row to hold.
   */
  getForChange(ruleId: string, destination: string, at: string): Promise<Breaker | undefined>;
  all(): Promise<Array<{ ruleId: string; breaker: Breaker; updatedAt: string }>>;
  /**
   * Stores the circuit after an attempt to `destination`; false, storing nothing, when the rule's
   * circuit is another destination's (its destination changed while the attempt was in flight).
   */
  save(ruleId: string, breaker: Breaker, at: string, destination: string): Promise<boolean>;
  /** A closed circuit for the rule's new destination, whatever the circuit was. */
  reset(ruleId: string, destination: string, at: string): Promise<void>;
  /** Takes the one probe of an open circuit; false when another worker took it first. */
  startProbe(ruleId: string, breaker: Breaker, now: string, owner: string): Promise<boolean>;
  /** Probes this worker had in flight (when it stopped, or of one rule) may go again at once: their circuits are open, probe due now. */
  releaseProbes(owner: string, now: string, ruleId?: string): Promise<void>;
  /** The earliest time after `now` an open circuit may probe (a probe already due is found by the claim). */
  nextProbeAt(now: string): Promise<string | undefined>;
}

/** Attempts to one destination of a rule, counted as their outcomes are recorded. */
export interface AttemptTally {
  readonly attempts: number;
  readonly delivered: number;
  readonly failed: number;
  readonly totalDurationMs: number;
}

/** What some attempts to a rule's destination add to its tally. */
export interface TallyIncrement extends AttemptTally {
  readonly ruleId: string;
  /** The destination the attempts went to (`destinationKeyOf`). */
  readonly destination: string;
}

/**
 * Attempt tallies per rule and destination, stored with the outcomes they count (in the same
 * transaction), so they survive restarts and every replica adds to the same ones.
 */
export interface TallyStore {
  add(increments: readonly TallyIncrement[], at: string): Promise<void>;
  /** Each rule's tally for the given destination (its current one); rules without attempts to it are left out. */
  get(rules: ReadonlyArray<{ readonly ruleId: string; readonly destination: string }>): Promise<Map<string, AttemptTally>>;
  /** Forgets a rule's tallies: its destination changed, or it was deleted. */
  clear(ruleId: string): Promise<void>;
}

export type ReplayStatus = 'running' | 'completed' | 'cancelled' | 'failed';

export interface ReplayJob {
  readonly jobId: string;
  readonly ruleId: string;
  readonly from: string;
  readonly to: string;
  readonly reevaluate: boolean;
  readonly freshIds: boolean;
  readonly status: ReplayStatus;
  /** Where the scan of the window stands: the last event taken, by log position. */
  readonly cursor: { readonly position: number; readonly deliveryId: string };
  readonly scanned: number;
  readonly scheduled: number;
  /** Events in the window, when known in advance (not when re-evaluating). */
  readonly total: number | null;
  readonly error: string | null;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly finishedAt: string | null;
}

export interface ReplayStore {
  /** Throws ConflictError when the rule has a replay running. */
  create(job: ReplayJob): Promise<void>;
  get(jobId: string): Promise<ReplayJob | undefined>;
  /** A rule's jobs a page at a time, newest first: by creation time, then id, both descending. */
  listByRule(ruleId: string, page: PageRequest): Promise<Page<ReplayJob>>;
  running(): Promise<ReplayJob[]>;
  advance(jobId: string, progress: { cursor: ReplayJob['cursor']; scanned: number; scheduled: number; at: string }): Promise<void>;
  /**
   * Takes the next step of a running job whose cursor still stands at `from`, in the transaction that
   * will advance it: false when another replica stepped it meanwhile (its counters must not be
   * overwritten with a step read from the same place).
   */
  claimStep(jobId: string, from: ReplayJob['cursor'], at: string): Promise<boolean>;
  /** Ends a running job; false when it was not running any more. */
  finish(jobId: string, status: Exclude<ReplayStatus, 'running'>, at: string, error?: string): Promise<boolean>;
}

/** The `database` destination: rows in tables Intake created for that purpose. */
export interface DestinationTables {
  /**
   * Refuses a name that belongs to something else (one of Intake's own tables, say). Names are one
   * table in any letter case: `Orders` and `orders` are the same destination table.
   */
  assertUsable(table: string): Promise<void>;
  insert(table: string, row: DestinationRow): Promise<void>;
  /** Many rows in one statement per chunk; a delivery already written is skipped. */
  insertMany(table: string, rows: readonly DestinationRow[]): Promise<void>;
}

export interface DestinationRow {
  readonly delivery_id: string;
  readonly event_id: string;
  readonly app_id: string;
  readonly event_type: string;
  readonly body: string;
  readonly delivered_at: string;
}

export type RuleCatalogFor = (db: Kysely<object>) => RuleCatalog;
export type SecretVaultFor = (db: Kysely<object>) => SecretVault;
export type DeliveryStoreFor = (db: Kysely<object>) => DeliveryStore;

/** A deleted rule whose waiting deliveries are still being dead-lettered, and when it was deleted. */
export interface DeletedRuleBacklog {
  readonly ruleId: string;
  readonly deletedAt: string;
}

/**
 * The deleted rules with deliveries left to dead-letter: the delete commits with one slice of them, the
 * rest go a slice a transaction after it, also after a restart. The claim holds these rules back.
 */
export interface DeletedRuleBacklogs {
  add(backlog: DeletedRuleBacklog): Promise<void>;
  list(): Promise<DeletedRuleBacklog[]>;
  remove(ruleId: string): Promise<void>;
}
export type DeletedRuleBacklogsFor = (db: Kysely<object>) => DeletedRuleBacklogs;
/**
 * Delivery history past its retention: succeeded deliveries are deleted with their attempts; dead
 * letters (waiting for an operator's replay) and deliveries still to go are kept.
 */
export interface DeliveryHistory {
  /**
   * Deletes up to `limit` deliveries that succeeded before `before`, oldest first, with their attempts;
   * once none is left, those of replay jobs cancelled before it. Answers how many.
   */
  forgetBefore(before: string, limit: number): Promise<number>;
  /**
   * The highest log position of a delivery deleted so far (0 when none was): an event at or before it
   * was routed, though its delivery may be gone, so it is never scheduled again.
   */
  forgottenThrough(): Promise<number>;
}
export type DeliveryHistoryFor = (db: Kysely<object>) => DeliveryHistory;
/** Items ingested for an application in a window of time, read from the log (for a replay that re-evaluates its rule). */
export interface IngestedItems {
  /**
   * The window's items after `afterPosition`, in log order, that `accept` takes: up to `limit` of them,
   * reading at most `budget` events of the log, so a sparse window costs reads, and a bounded number
   * per call. `lastPosition` is where the next read goes on; `done`, the window was read to its end.
   */
  read(
    appId: string,
    window: { from: string; to: string },
    afterPosition: number,
    take: { readonly limit: number; readonly budget: number; readonly accept: (item: ItemSnapshot) => boolean },
  ): Promise<{ items: Array<{ position: number; item: ItemSnapshot }>; lastPosition: number; done: boolean }>;
}

/**
 * Inside a transaction, pass its `afterCommit`: a table created there is only known to exist once
 * that transaction committed (a pass rolled back takes the CREATE TABLE with it).
 */
export type DestinationTablesFor = (db: Kysely<object>, afterCommit?: (callback: () => void) => void) => DestinationTables;
export type BreakerStoreFor = (db: Kysely<object>) => BreakerStore;
export type TallyStoreFor = (db: Kysely<object>) => TallyStore;
export type ReplayStoreFor = (db: Kysely<object>) => ReplayStore;
