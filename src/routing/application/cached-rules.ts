import type { RuleCatalogFor, StoredRule } from './ports.js';
import type { RuleCacheOptions } from './rule-evaluator.js';
import { makeRoom } from '../../shared/bounded-map.js';

/** Rules kept in memory at most: a deleted rule's entry is made again when its leftovers are dead-lettered. */
const CACHED_RULES = 10_000;

export interface CachedRules {
  /** The catalog with `get` answered from memory once a rule was read. */
  readonly catalog: RuleCatalogFor;
  /** Forgets a rule: called for every rule event the scheduler reads, so a change is seen from then on. */
  invalidate(ruleId: string): void;
}

/**
 * Rules read by id on every scheduled delivery and every attempt, kept in memory until a rule
 * event says they changed (or they reach `maxAgeMs`), instead of read from the table each time.
 */
export function cachedRules(catalog: RuleCatalogFor, options: RuleCacheOptions = {}): CachedRules {
  const maxAgeMs = options.maxAgeMs ?? Number.POSITIVE_INFINITY;
  const now = options.now ?? performance.now.bind(performance);
  const known = new Map<string, { readonly rule: StoredRule | undefined; readonly readAt: number }>();
  return {
    catalog: (db) => {
      const rules = catalog(db);
      return {
        ...rules,
        async get(ruleId) {
          const cached = known.get(ruleId);
          if (cached && now() - cached.readAt <= maxAgeMs) return cached.rule;
          const readAt = now();
          const rule = await rules.get(ruleId);
          known.delete(ruleId);
          makeRoom(known, CACHED_RULES);
          known.set(ruleId, { rule, readAt });
          return rule;
        },
      };
    },
    invalidate(ruleId) {
      known.delete(ruleId);
    },
  };
}
