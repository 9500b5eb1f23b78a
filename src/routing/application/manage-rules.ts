import type { Kysely } from 'kysely';
import type { Clock } from '../../shared/clock.js';
import { ConflictError, NotFoundError, ValidationError } from '../../shared/errors.js';
import type { AppendRequest, EventStore, StoreTransaction } from '../../shared/event-store/event-store.js';
import type { IdGenerator } from '../../shared/ids.js';
import { retriedCommits } from '../../shared/event-store/retried-changes.js';
import type { DatabaseConfig, QueueConfig, WebhookConfig } from '../domain/destination-config.js';
import {
  changesDestination,
  decideCreate,
  decideDelete,
  decideRotate,
  decideToggle,
  decideUpdate,
  destinationKeyOf,
  evolveRule,
  noRule,
  parseRule,
  ruleStreamId,
  type RoutingRuleEvent,
  type RuleFields,
  type RuleInput,
  type RuleState,
} from '../domain/routing-rule.js';
import { unmasked } from '../domain/destination-secrets.js';
import { DEAD_LETTER_SLICE, deadLetterSlice, type DeadLetteredSlice } from './deleted-rule-backlogs.js';
import { revealedDestination, sealedDestination } from './destination-credentials.js';
import type {
  BreakerStoreFor,
  DeletedRuleBacklogs,
  DeletedRuleBacklogsFor,
  DeliveryStore,
  DeliveryStoreFor,
  DeliverySummary,
  DestinationTables,
  RuleCatalog,
  SecretVault,
  SecretVaultFor,
  StoredRule,
  TallyStoreFor,
} from './ports.js';
import type { RuleEvaluator } from './rule-evaluator.js';

/** A rule event with the signing secret that goes with it, committed together. */
export interface RuleChange {
  readonly ruleId: string;
  readonly append: AppendRequest;
  /** Stored as the rule's secret. */
  readonly secret?: string;
  /** The secret `secret` replaces goes on signing beside it until then (a rotation). */
  readonly keepPreviousUntil?: string;
  /** The destination's credentials to seal, by the references the rule holds in their place. */
  readonly credentials?: Readonly<Record<string, string>>;
  /** Make sure the rule has a secret: a new one is made unless one is stored. */
  readonly ensureSecret?: boolean;
  /**
   * The rule's destination changed (to `destination`, its key): its circuit starts closed, its
   * attempts are counted from zero, and its deliveries waiting for a retry are due now, as of this
   * time. The old one's failures, and the waits they imposed (a Retry-After), say nothing of it.
   */
  readonly newDestination?: { readonly destination: string; readonly at: string };
  /** A new rule of this application: refused if it already has `MAX_RULES_PER_APPLICATION`. */
  readonly newRuleOf?: string;
  /**
   * The rule is deleted, at this time: its deliveries that wait are dead-lettered with it, rather than
   * each when its next attempt comes (hours later, showing `retrying` for a rule that is gone): a slice
   * in its transaction, the rest in transactions of their own right after (`deletedRuleSweeper`).
   */
  readonly deleted?: { readonly at: string };
}

/** Commits a rule change; answers the secret it made, if it made one. */
export type SaveRuleChange = (change: RuleChange) => Promise<{ readonly madeSecret?: string }>;

export const saveRuleChange =
  ({
    store,
    vault,
    breakers,
    tallies,
    newSigningSecret,
    rules,
    deliveries,
    backlogs,
    onDeliveriesDue,
    onGivenUp,
    onBacklogLeft,
    onCommitted,
  }: Pick<RuleDeps, 'store' | 'vault' | 'breakers' | 'tallies' | 'newSigningSecret'> & {
    readonly rules: (db: Kysely<object>) => RuleCatalog;
    readonly deliveries: DeliveryStoreFor;
    readonly backlogs: DeletedRuleBacklogsFor;
    /** A deleted rule left more waiting deliveries than one transaction dead-letters: the sweeper goes on with them. */
    readonly onBacklogLeft: () => void;
    /**
     * The change committed: the worker's copy of the rule is forgotten here, before it is woken, not
     * when the scheduler reads the rule's event, by when a delivery made due by the change may have
     * gone to the destination the rule just left.
     */
    readonly onCommitted?: (ruleId: string) => void;
    /** Wakes the delivery worker (where the change commits): deliveries became due at once. */
    readonly onDeliveriesDue: () => void;
    /** Deliveries of a deleted rule dead-lettered with it, once committed (for the metrics and the log). */
    readonly onGivenUp?: (ruleId: string, deliveries: readonly DeliverySummary[]) => void;
  }): SaveRuleChange =>
  (change) =>
    store.transaction(async (tx) => {
      if (onCommitted) tx.afterCommit(() => onCommitted(change.ruleId));
      // Counted in the transaction that adds the rule, creates of one application taking turns: two
      // at once must not both find room for one.
      if (change.newRuleOf !== undefined)
        assertRoomForRule(change.newRuleOf, await rules(tx.db).countByApp(change.newRuleOf, { taking: true }));
      // Kept waiting, a retry the old receiver put off for a day would reach the new one a day late. Before
      // the append, which takes the log's lock: an attempt recording meanwhile holds its delivery, then the log.
      if (change.newDestination !== undefined && (await deliveries(tx.db).dueAgain(change.ruleId, change.newDestination.at)) > 0)
        tx.afterCommit(onDeliveriesDue);
      if (change.deleted !== undefined) {
        const slice = await deleteWithWaiting(tx, deliveries(tx.db), backlogs(tx.db), change, change.deleted.at);
        if (slice.given.length > 0 && onGivenUp) tx.afterCommit(() => onGivenUp(change.ruleId, slice.given));
        if (slice.more) tx.afterCommit(onBacklogLeft);
      } else await tx.append(change.append);
      if (change.newDestination !== undefined) {
        const { destination, at } = change.newDestination;
        await breakers(tx.db).reset(change.ruleId, destination, at);
        await tallies(tx.db).clear(change.ruleId);
      }
      const secrets = vault(tx.db);
      if (change.credentials !== undefined) await secrets.sealValues(change.ruleId, change.credentials);
      if (change.secret !== undefined) await secrets.set(change.ruleId, change.secret, change.keepPreviousUntil);
      if (change.ensureSecret && !(await secrets.get(change.ruleId))) {
        const madeSecret = newSigningSecret();
        await secrets.set(change.ruleId, madeSecret);
        return { madeSecret };
      }
      return {};
    });

/**
 * A deleted rule's waiting deliveries dead-lettered, a slice of them, then the rule's event and theirs
 * appended in one statement: the append takes the log's lock, and an attempt recording meanwhile holds
 * its delivery, then the log. One whose attempt is in flight is given up as that attempt records. What
 * the slice leaves is listed for the sweeper, which goes on with it once this commits.
 */
async function deleteWithWaiting(
  tx: StoreTransaction,
  deliveries: DeliveryStore,
  backlogs: DeletedRuleBacklogs,
  change: RuleChange,
  at: string,
): Promise<DeadLetteredSlice> {
  const slice = await deadLetterSlice(deliveries, change.ruleId, at, DEAD_LETTER_SLICE);
  await tx.appendMany([change.append, ...slice.appends]);
  if (slice.more) await backlogs.add({ ruleId: change.ruleId, deletedAt: at });
  return slice;
}

export interface RuleDeps {
  readonly store: EventStore;
  /** Where rule changes with secrets commit (the storage thread's procedure). */
  readonly saveChange: SaveRuleChange;
  readonly clock: Clock;
  readonly newId: IdGenerator;
  readonly catalog: RuleCatalog;
  readonly vault: SecretVaultFor;
  /** The vault on the connection requests read with: a change opens the rule's credentials to keep those it does not change. */
  readonly secrets: Pick<SecretVault, 'openValues'>;
  readonly breakers: BreakerStoreFor;
  readonly tallies: TallyStoreFor;
  readonly evaluator: RuleEvaluator;
  readonly destinationTables: DestinationTables;
  readonly applicationExists: (appId: string) => Promise<boolean>;
  /** Text-level SSRF check of a webhook URL (the resolved address is checked again at delivery). */
  readonly checkWebhookUrl: (url: string) => void;
  /** A queue destination's broker: a configured name, or a URL under the same address policy. */
  readonly checkQueueDestination: (config: QueueConfig) => void;
  readonly newSigningSecret: () => string;
  /** A new reference for a sealed credential (see `destination-secrets.ts`). */
  readonly newSecretReference: () => string;
}

/** How long a signing secret replaced by a rotation goes on signing beside the new one, as Svix does. */
export const PREVIOUS_SECRET_HONOURED_MS = 24 * 60 * 60 * 1000;

/** A rule's state folded from its stream: tells a deleted rule from one that never existed. */
export async function ruleStateOf(store: EventStore, ruleId: string): Promise<RuleState> {
  return (await load(store, ruleId)).state;
}

/** Changes to one rule: decided again on the new state when another committed first (see retriedCommits). */
const changes = retriedCommits('routing.busy', (ruleId) => `routing rule ${ruleId}`);

async function load(store: EventStore, ruleId: string): Promise<{ state: RuleState; version: number }> {
  const events = await store.readStream(ruleStreamId(ruleId));
  return { state: events.map((e) => e as unknown as RoutingRuleEvent).reduce(evolveRule, noRule), version: events.length };
}

/**
 * The rule a request asks for, checked, with its credentials in clear: a credential given as the mask
 * is the one `current` (the rule before the change, in clear) holds.
 */
async function validated(deps: RuleDeps, given: RuleInput, current?: RuleFields): Promise<RuleFields> {
  const input = unmasked(given, current);
  if (!(await deps.applicationExists(input.app_id))) {
    throw new ValidationError('routing.unknown-application', `no application ${input.app_id}`, [
      { path: 'app_id', message: 'unknown application' },
    ]);
  }
  const fields = parseRule(input, current);
  if (fields.destination_type === 'webhook') deps.checkWebhookUrl((fields.destination_config as WebhookConfig).url);
  if (fields.destination_type === 'queue') deps.checkQueueDestination(fields.destination_config as QueueConfig);
  if (fields.destination_type === 'database')
    await deps.destinationTables.assertUsable((fields.destination_config as DatabaseConfig).table);
  return fields;
}

export interface CreatedRule {
  readonly rule: StoredRule;
  /** Shown once, at creation: the receiver verifies signatures with it. */
  readonly signingSecret: string | undefined;
}

/**
 * Rules an application may have. Each item of the application is judged by every active rule, and
 * each that matches adds a delivery: thousands of rules would multiply an item's cost on the thread
 * that stores everyone's items. Rules stored before the cap keep working.
 */
export const MAX_RULES_PER_APPLICATION = 200;

function assertRoomForRule(appId: string, rules: number): void {
  if (rules < MAX_RULES_PER_APPLICATION) return;
  throw new ConflictError(
    'routing.too-many-rules',
    `application ${appId} has ${MAX_RULES_PER_APPLICATION} rules, the most it may have: delete one, or combine rules with $or`,
  );
}

export const createRule =
  (deps: RuleDeps) =>
  async (input: RuleInput): Promise<CreatedRule> => {
    const fields = await validated(deps, input);
    // Said before anything else is done; said for sure in the transaction that would add the rule.
    assertRoomForRule(fields.app_id, await deps.catalog.countByApp(fields.app_id));
    const ruleId = deps.newId();
    const sealed = sealedDestination(fields, undefined, deps.newSecretReference);
    const event = decideCreate(ruleId, sealed.destination, noRule, deps.clock.now());
    const signingSecret = fields.destination_type === 'webhook' ? deps.newSigningSecret() : undefined;
    await deps.saveChange({
      ruleId,
      newRuleOf: fields.app_id,
      append: { streamId: ruleStreamId(ruleId), events: [event], expectedVersion: 'no_stream' },
      credentials: sealed.values,
      ...(signingSecret ? { secret: signingSecret } : {}),
    });
    deps.evaluator.invalidate(fields.app_id);
    return { rule: { ...event.data, updated_at: event.data.created_at }, signingSecret };
  };

/** The fields of a partial update (PATCH); a rule stays with its application. */
export type RulePatch = Partial<Omit<RuleInput, 'app_id'>>;

/**
 * Replaces a rule (PUT). `is_active` is kept when the input leaves it out: replacing a rule's
 * condition must not switch a disabled rule back on.
 */
export const updateRule =
  (deps: RuleDeps) =>
  (ruleId: string, input: RuleInput): Promise<CreatedRule> =>
    saveRule(deps, ruleId, (current) => ({ ...input, is_active: input.is_active ?? current.is_active }));

/** Changes only the given fields of a rule (PATCH); the new whole is validated as on creation. */
export const patchRule =
  (deps: RuleDeps) =>
  (ruleId: string, patch: RulePatch): Promise<CreatedRule> =>
    saveRule(deps, ruleId, (current) => {
      const given = Object.fromEntries(Object.entries(patch).filter(([, value]) => value !== undefined));
      return { ...current, ...given, app_id: current.app_id };
    });

async function saveRule(deps: RuleDeps, ruleId: string, inputFrom: (current: RuleFields) => RuleInput): Promise<CreatedRule> {
  const { signingSecret, appId } = await changes(ruleId, async () => {
    const { state, version } = await load(deps.store, ruleId);
    if (state.status !== 'live') throw new NotFoundError('routing.rule-not-found', `no routing rule ${ruleId}`);
    const current = (await revealedDestination(deps.secrets, ruleId, state.fields)).destination;
    const valid = await validated(deps, inputFrom(current), current);
    // Sealed anew on each decision: the credentials kept are those of the rule as now loaded.
    const sealed = sealedDestination(valid, { stored: state.fields, clear: current }, deps.newSecretReference);
    const fields = sealed.destination;
    const event = decideUpdate(ruleId, fields, state, deps.clock.now());
    return async () => {
      // A rule that becomes a webhook needs a secret to sign with; an existing one is kept.
      const { madeSecret } = await deps.saveChange({
        ruleId,
        append: { streamId: ruleStreamId(ruleId), events: [event], expectedVersion: version },
        credentials: sealed.values,
        ensureSecret: fields.destination_type === 'webhook',
        ...(changesDestination(state.fields, fields)
          ? { newDestination: { destination: destinationKeyOf(fields), at: event.data.updated_at } }
          : {}),
      });
      return { signingSecret: madeSecret, appId: fields.app_id };
    };
  });
  deps.evaluator.invalidate(appId);
  const stored = await deps.catalog.get(ruleId);
  if (!stored) throw new NotFoundError('routing.rule-not-found', `no routing rule ${ruleId}`);
  return { rule: stored, signingSecret };
}

/** Appends one rule event decided from the rule as loaded, with the version read. */
function changeRule<E extends RoutingRuleEvent>(store: EventStore, ruleId: string, decide: (state: RuleState) => E): Promise<E> {
  return changes(ruleId, async () => {
    const { state, version } = await load(store, ruleId);
    const event = decide(state);
    return async () => {
      await store.append({ streamId: ruleStreamId(ruleId), events: [event], expectedVersion: version });
      return event;
    };
  });
}

export const toggleRule =
  (deps: RuleDeps) =>
  async (ruleId: string, to?: boolean, reason?: string): Promise<StoredRule> => {
    const event = await changeRule(deps.store, ruleId, (state) => decideToggle(ruleId, state, deps.clock.now(), to, reason));
    deps.evaluator.invalidate(event.data.app_id);
    const stored = await deps.catalog.get(ruleId);
    if (!stored) throw new NotFoundError('routing.rule-not-found', `no routing rule ${ruleId}`);
    return stored;
  };

/** Deletes a rule, and dead-letters its deliveries that wait in the same transaction (see `RuleChange.deleted`). */
export const deleteRule =
  (deps: RuleDeps) =>
  async (ruleId: string): Promise<void> => {
    const event = await changes(ruleId, async () => {
      const { state, version } = await load(deps.store, ruleId);
      const deleted = decideDelete(ruleId, state, deps.clock.now());
      return async () => {
        await deps.saveChange({
          ruleId,
          append: { streamId: ruleStreamId(ruleId), events: [deleted], expectedVersion: version },
          deleted: { at: deleted.data.deleted_at },
        });
        return deleted;
      };
    });
    deps.evaluator.invalidate(event.data.app_id);
  };

/**
 * A new signing secret, effective for the next attempt of every delivery of the rule. The one it
 * replaces signs beside it for `PREVIOUS_SECRET_HONOURED_MS`, so receivers have a day to take the new one.
 */
export const rotateSecret =
  (deps: RuleDeps) =>
  async (ruleId: string): Promise<string> => {
    return changes(ruleId, async () => {
      const { state, version } = await load(deps.store, ruleId);
      const now = deps.clock.now();
      const event = decideRotate(ruleId, state, now);
      const secret = deps.newSigningSecret();
      return async () => {
        await deps.saveChange({
          ruleId,
          append: { streamId: ruleStreamId(ruleId), events: [event], expectedVersion: version },
          secret,
          keepPreviousUntil: new Date(now.getTime() + PREVIOUS_SECRET_HONOURED_MS).toISOString(),
        });
        return secret;
      };
    });
  };

export const getRule =
  (catalog: RuleCatalog) =>
  async (ruleId: string): Promise<StoredRule> => {
    const rule = await catalog.get(ruleId);
    if (!rule) throw new NotFoundError('routing.rule-not-found', `no routing rule ${ruleId}`);
    return rule;
  };
