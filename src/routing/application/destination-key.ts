import { destinationKeyOf } from '../domain/routing-rule.js';
import type { StoredRule } from './ports.js';

const keys = new WeakMap<StoredRule, string>();

/** The key of a rule's destination, computed once per rule read (cached rules keep theirs until they change). */
export function destinationKeyOfRule(rule: StoredRule): string {
  let key = keys.get(rule);
  if (key === undefined) keys.set(rule, (key = destinationKeyOf(rule)));
  return key;
}
