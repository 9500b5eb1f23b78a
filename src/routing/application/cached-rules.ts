import type { RuleCatalogFor, StoredRule } from './ports.js';

export interface CachedRules {
  /** The catalog with `get` answered from memory once a rule was read. */
  readonly catalog: RuleCatalogFor;
  /** Forgets a rule: called for every rule event the scheduler reads, so a change is seen from then on. */
  invalidate(ruleId: string): void;
}

/**
 * Rules read by id on every scheduled delivery and every attempt, kept in memory until a rule
 * event says they changed, instead of read from the table each time.
 */
export function cachedRules(catalog: RuleCatalogFor): CachedRules {
  const known = new Map<string, StoredRule | undefined>();
  return {
    catalog: (db) => {
      const rules = catalog(db);
      return {
        ...rules,
        async get(ruleId) {
          if (known.has(ruleId)) return known.get(ruleId);
          const rule = await rules.get(ruleId);
          known.set(ruleId, rule);
          return rule;
        },
      };
    },
    invalidate(ruleId) {
      known.delete(ruleId);
    },
  };
}
