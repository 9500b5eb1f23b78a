import { makeRoom } from '../../shared/bounded-map.js';
import { ValidationError } from '../../shared/errors.js';
import { OverBudget, workBudget, type WorkBudget } from '../../shared/work-budget.js';
import { countTowardTurn, mapYielding, ownTurn, stepsSinceTurn } from '../../shared/yielding.js';
import { compileCondition, type ConditionTest } from '../domain/condition.js';
import { conditionErrors, versionOf, type ConditionErrorOf } from './condition-errors.js';
import type { StoredRule } from './ports.js';

/**
 * What evaluating an application's rules may cost on one event, in steps (`condition-cost.ts`):
 * about 150 ms of the HTTP thread at worst, which nothing else waits longer than. An event of
 * ordinary size meets a few thousand steps; one that needs more is refused (422).
 */
export const RULE_STEPS_PER_EVENT = 10_000_000;

/**
 * What the rules of every request together may spend in one turn of the event loop before the next
 * event waits for a turn of its own: a tenth of an event's share, so that the sockets are read at least
 * every event's worth, however many requests bring costly events at once.
 */
export const RULE_STEPS_PER_TURN = RULE_STEPS_PER_EVENT / 10;

/**
 * What the deliveries of one event may store, each a copy of it: a 900 KB event matched by a hundred
 * rules wrote 190 MB while every writer waited. Beyond it the event is refused (422) as too costly.
 */
export const ROUTED_BYTES_PER_EVENT = 16 * 1024 * 1024;
/** What a delivery's bookkeeping costs beside its copy of the event, counted against the same budget. */
const DELIVERY_OVERHEAD_BYTES = 2048;

export interface RoutingSummary {
  readonly rules_evaluated: number;
  readonly rules_matched: number;
  readonly rules_executed: number;
}

export interface RoutingDecision {
  readonly summary: RoutingSummary;
  /** In priority order: the rules whose deliveries will be scheduled. */
  readonly matchedRuleIds: string[];
}

/** What a condition sees: the event as a document, e.g. `payload.total`, `metadata.ip`, `event_type`. */
export interface RoutableEvent {
  readonly app_id: string;
  readonly event_type: string;
  readonly payload: object;
  readonly metadata: object;
}

interface CompiledRule {
  readonly ruleId: string;
  readonly eventTypeFilter: string | null;
  readonly test: ConditionTest;
}

export interface RuleEvaluator {
  /**
   * Tests the application's active rules on the event. `request` is the budget of the request the
   * event came in (a batch's events share one, `STEPS_PER_REQUEST`); alone, the event has its own.
   * Throws a ValidationError (`routing.rules-too-costly`) when the rules would cost more than the
   * event or what is left of the request may spend; nothing is matched then.
   */
  evaluate(event: RoutableEvent, request?: WorkBudget): Promise<RoutingDecision>;
  /** Drops an application's compiled rules; the next evaluation reloads them. */
  invalidate(appId: string): void;
}

export interface RuleCacheOptions {
  /**
   * How long a cached rule may be used without being read again. Replicas of a service share their
   * durable consumers, so a rule event reaches one of them: the others see the change when their copy
   * is this old. A process alone with its rule events keeps them until an event invalidates them.
   */
  readonly maxAgeMs?: number;
  /** Milliseconds of a monotonic clock. */
  readonly now?: () => number;
}

export interface EvaluatorOptions extends RuleCacheOptions {
  /** Why a stored rule's condition cannot run today (shared with the rule API, which shows it). */
  readonly conditionError?: ConditionErrorOf;
  /** A rule left out because its condition cannot run: told once per rule version, not per event. */
  readonly onUnevaluable?: (rule: StoredRule, error: string) => void;
}

/**
 * Evaluates an application's active rules on the ingest path, highest priority first. Conditions
 * are compiled once per rule version and cached per application until a rule event invalidates them
 * (or they reach `maxAgeMs`). A stored rule whose condition today's limits refuse (saved by an older
 * release) is left out: it is not evaluated and matches nothing until it is replaced.
 */
export function ruleEvaluator(loadRules: (appId: string) => Promise<StoredRule[]>, options: EvaluatorOptions = {}): RuleEvaluator {
  const maxAgeMs = options.maxAgeMs ?? Number.POSITIVE_INFINITY;
  const now = options.now ?? performance.now.bind(performance);
  const conditionError = options.conditionError ?? conditionErrors();
  const told = new Set<string>();
  const tell = (rule: StoredRule, error: string) => {
    const version = versionOf(rule);
    if (told.has(version)) return;
    if (told.size >= REMEMBERED_VERSIONS) told.clear();
    told.add(version);
    options.onUnevaluable?.(rule, error);
  };
  const runnable = (rule: StoredRule) => {
    const error = conditionError(rule);
    if (error === null) return true;
    tell(rule, error);
    return false;
  };
  // Compiled rules by version, kept across reloads: a change to one rule of an application recompiles
  // that rule alone. Undefined: it did not compile, and matches nothing.
  const byVersion = new Map<string, CompiledRule | undefined>();
  const compileRule = (rule: StoredRule): CompiledRule | undefined => {
    const version = versionOf(rule);
    if (byVersion.has(version)) return byVersion.get(version);
    let made: CompiledRule | undefined;
    try {
      made = { ruleId: rule.rule_id, eventTypeFilter: rule.event_type_filter, test: compileCondition(rule.condition) };
    } catch (error) {
      // Saving compiles every condition; one that still fails must not fail every event of its application.
      tell(rule, `the condition cannot be compiled: ${(error as Error).message}`);
    }
    if (byVersion.size >= REMEMBERED_VERSIONS) byVersion.clear();
    byVersion.set(version, made);
    return made;
  };
  const cache = new Map<string, { readonly rules: Promise<CompiledRule[]>; readonly loadedAt: number }>();
  const compiled = (appId: string) => {
    const cached = cache.get(appId);
    if (cached && now() - cached.loadedAt <= maxAgeMs) return cached.rules;
    const rules = loadRules(appId).then(async (all) => {
      const active = all.filter((rule) => rule.is_active).sort((a, b) => b.priority - a.priority);
      const made = await mapYielding(active, (rule) => (runnable(rule) ? compileRule(rule) : undefined));
      return made.filter((rule): rule is CompiledRule => rule !== undefined);
    });
    const entry = { rules, loadedAt: now() };
    rules.catch(() => {
      if (cache.get(appId) === entry) cache.delete(appId);
    });
    cache.delete(appId);
    makeRoom(cache, CACHED_APPLICATIONS);
    cache.set(appId, entry);
    return rules;
  };

  // Where each request's budget stood when it last let the thread serve others.
  const pausedAt = new WeakMap<WorkBudget, number>();

  return {
    async evaluate(event, request) {
      const rules = await compiled(event.app_id);
      // Most applications have no rules: no condition document to build for them.
      if (rules.length === 0) return { summary: { rules_evaluated: 0, rules_matched: 0, rules_executed: 0 }, matchedRuleIds: [] };
      const shared = request ?? workBudget(RULE_STEPS_PER_EVENT);
      // A batch's events are evaluated one after another: once they have spent an event's worth since
      // the last pause, or the rules of all requests a turn's worth, other requests get the thread
      // before the next one (and other batches pausing too each get a turn of their own).
      if (shared.spent - (pausedAt.get(shared) ?? 0) >= RULE_STEPS_PER_EVENT || stepsSinceTurn() >= RULE_STEPS_PER_TURN) {
        pausedAt.set(shared, shared.spent);
        await ownTurn();
      }
      const budget = shared.child(RULE_STEPS_PER_EVENT);
      const document = conditionDocumentOf(event);
      const sizes = new WeakMap<object, number>();
      const matchedRuleIds: string[] = [];
      let current: CompiledRule | undefined;
      try {
        for (const rule of rules) {
          current = rule;
          budget.spend(1);
          if ((rule.eventTypeFilter === null || rule.eventTypeFilter === event.event_type) && rule.test(document, budget, sizes))
            matchedRuleIds.push(rule.ruleId);
        }
      } catch (error) {
        if (error instanceof OverBudget)
          throw tooCostly(event.app_id, error, error.budget === shared && request !== undefined, current?.ruleId);
        throw error;
      } finally {
        countTowardTurn(budget.spent);
      }
      checkFanOut(event, matchedRuleIds.length);
      return {
        summary: { rules_evaluated: rules.length, rules_matched: matchedRuleIds.length, rules_executed: matchedRuleIds.length },
        matchedRuleIds,
      };
    },
    invalidate(appId) {
      cache.delete(appId);
    },
  };
}

/** Refuses an event whose deliveries would store more than `ROUTED_BYTES_PER_EVENT`. */
function checkFanOut(event: RoutableEvent, matched: number): void {
  // One copy is never too much (a body is far below the budget): no need to measure the event.
  if (matched <= 1) return;
  const copy = Buffer.byteLength(JSON.stringify(event.payload)) + DELIVERY_OVERHEAD_BYTES;
  if (matched * copy <= ROUTED_BYTES_PER_EVENT) return;
  const message =
    `the ${matched} routing rules of application ${event.app_id} this event matches would store ${matched} copies of its ` +
    `${copy.toLocaleString('en')} bytes, more than the ${ROUTED_BYTES_PER_EVENT.toLocaleString('en')} an event may route: ` +
    'send a smaller event, or narrow the rules';
  throw new ValidationError('routing.rules-too-costly', message, [{ path: 'payload', message }]);
}

/** Rule versions remembered at most; past it the memory starts over (compiling again is only slower). */
const REMEMBERED_VERSIONS = 10_000;

/** Applications whose rules are kept compiled at most; one left out is read again at its next event. */
const CACHED_APPLICATIONS = 10_000;

function tooCostly(appId: string, error: OverBudget, requestSpent: boolean, ruleId: string | undefined): ValidationError {
  const cause = error.what === undefined ? '' : ` (rule ${ruleId}: ${error.what})`;
  const message = requestSpent
    ? `the events before this one in the request used up the ${error.limit.toLocaleString('en')} steps the routing rules ` +
      `may take in one request: send it in another request`
    : `testing the routing rules of application ${appId} on this event would take more than ` +
      `${error.limit.toLocaleString('en')} steps${cause}: send shorter strings or arrays there, or simplify the rule`;
  return new ValidationError('routing.rules-too-costly', message, [{ path: 'payload', message }]);
}

/**
 * What a condition is tested against: the event, plus the payload's `properties`, `traits` and
 * `context` at the top, so rules over analytics SDK messages read `properties.revenue` as Segment
 * users write them (`payload.properties.revenue` works too).
 */
export function conditionDocumentOf(event: RoutableEvent): object {
  const payload = event.payload as Record<string, unknown>;
  const top: Record<string, unknown> = {};
  for (const key of ['properties', 'traits', 'context'] as const) {
    const value = payload[key];
    if (isObject(value)) top[key] = value;
  }
  // RudderStack's SDKs send an identify's traits in context.traits: `traits.*` reads them there too,
  // as profiles do (`traits` wins where both name one).
  const contextTraits = isObject(top.context) ? top.context.traits : undefined;
  if (isObject(contextTraits)) top.traits = { ...contextTraits, ...(isObject(top.traits) ? top.traits : {}) };
  return { ...top, ...event };
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
