import { conditionProblem } from '../domain/condition.js';
import { maskedDestination } from '../domain/destination-secrets.js';
import type { StoredRule } from './ports.js';

/** A rule as the API shows it: its credentials masked, and why its condition cannot run, when it cannot. */
export type RuleView = StoredRule & {
  /** Null when the condition runs; otherwise why today's limits refuse it (the rule then matches no event). */
  readonly condition_error: string | null;
};

export type ConditionErrorOf = (rule: StoredRule) => string | null;

/** A rule's version: its `updated_at` changes with every change of it. */
export const versionOf = (rule: StoredRule) => `${rule.rule_id}\u0000${rule.updated_at}`;

/** Rule versions remembered at most: past it, the memory starts over (checking a version again is only slower). */
const REMEMBERED = 10_000;

/**
 * Why each stored rule's condition cannot run, checked once per rule version (a rule's `updated_at`
 * changes with every change of it): the check compiles every pattern of the condition, and rules are
 * listed and compiled far more often than they change.
 */
export function conditionErrors(): ConditionErrorOf {
  const known = new Map<string, string | null>();
  return (rule) => {
    const version = versionOf(rule);
    const remembered = known.get(version);
    if (remembered !== undefined) return remembered;
    const error = conditionProblem(rule.condition);
    if (known.size >= REMEMBERED) known.clear();
    known.set(version, error);
    return error;
  };
}

/** Credentials never leave: each shows as the mask, which a PUT or PATCH may send back to keep it. */
export const ruleViewOf =
  (conditionError: ConditionErrorOf) =>
  (rule: StoredRule): RuleView => ({ ...maskedDestination(rule), condition_error: conditionError(rule) });
