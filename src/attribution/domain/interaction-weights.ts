import { ValidationError, type Violation } from '../../shared/errors.js';
import { INTERACTION_TYPES, type InteractionType } from './values.js';

/** How much one interaction of each type is worth in a campaign's score: an engagement says more than a view. */
export type InteractionWeights = Readonly<Record<InteractionType, number>>;
export type InteractionCounts = Readonly<Record<InteractionType, number>>;

export const DEFAULT_WEIGHTS: InteractionWeights = { view: 1, click: 3, engagement: 5 };

/** Far above any useful ratio, and low enough that a campaign's score stays a finite number (1e308 made it null). */
const MAX_WEIGHT = 1_000_000;

/** Weights from text such as `view=1,click=3,engagement=5`; types left out keep their default. */
export function parseWeights(text: string): InteractionWeights {
  const given: Array<[string, number]> = text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0)
    .map((entry) => {
      const [name = '', weight, ...rest] = entry.split('=').map((part) => part.trim());
      // "click=" or "click=1=2" are typos, not zeros.
      return [name, weight === undefined || weight === '' || rest.length > 0 ? Number.NaN : Number(weight)];
    });
  return weightsOf(Object.fromEntries(given));
}

/** Weights given as numbers; types left out keep their default. */
export function weightsOf(given: Readonly<Record<string, number>>): InteractionWeights {
  const violations: Violation[] = [];
  for (const [name, weight] of Object.entries(given)) {
    if (!(INTERACTION_TYPES as readonly string[]).includes(name)) {
      violations.push({ path: name, message: `is not an interaction type (${INTERACTION_TYPES.join(', ')})` });
    } else if (!Number.isFinite(weight) || weight < 0 || weight > MAX_WEIGHT) {
      violations.push({ path: name, message: `must be a number from 0 to ${MAX_WEIGHT.toLocaleString('en-US')}, as in click=3` });
    }
  }
  if (violations.length > 0) {
    throw new ValidationError(
      'attribution.invalid-weights',
      `invalid interaction weights: ${violations.map((v) => `${v.path} ${v.message}`).join('; ')}`,
      violations,
    );
  }
  return { ...DEFAULT_WEIGHTS, ...given };
}

export function scoreOf(counts: InteractionCounts, weights: InteractionWeights): number {
  return INTERACTION_TYPES.reduce((score, type) => score + counts[type] * weights[type], 0);
}
