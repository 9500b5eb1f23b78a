import { compileLinearRegex, UnsupportedRegexError } from '../../shared/linear-regex.js';
import type { WorkBudget } from '../../shared/work-budget.js';

/**
 * What testing a condition on one event costs, counted before sift runs it. sift looks at every
 * value at a condition's path (each element of an array on the way, and the array itself), and
 * comparing a value that is an array copies it whole (`comparable`): one rule of 100 comparisons
 * over an array of 200,000 numbers took 5 s of the HTTP thread, and an application may have many
 * rules. A `$regex` costs its steps per character of each string it tests (`linear-regex.ts`).
 *
 * The count walks the event the way sift does, ignoring where sift would stop early, so it is never
 * below sift's own work; the walk itself is plain loops, a small part of what it counts.
 */

/** One value a comparison looks at (sift's walk and call), in steps of about 12 ns. */
export const VISIT_STEPS = 14;
/** Each step of that walk along a path. */
export const WALK_STEPS = 2;
/** Each member of a value a comparison copies or compares (an array's elements, an object's fields). */
export const MEMBER_STEPS = 3;

/** A condition (or the operand of `$not`, `$elemMatch`, `$and`...) as sift builds it, reduced to what it costs. */
interface QueryPlan {
  /** Operations applied to the value itself (an operator object, `$and`/`$or`/`$nor`, or a plain value compared whole). */
  readonly self: readonly OperationPlan[];
  /** Field paths, each walked from the value, with what is applied at the end. */
  readonly fields: ReadonlyArray<{
    readonly path: readonly string[];
    readonly where: string;
    readonly operations: readonly OperationPlan[];
  }>;
}

type OperationPlan =
  /** Compares each value: `comparisons` times the value's size (0 for a set lookup, `$exists`, `$size`). */
  | { readonly kind: 'compare'; readonly comparisons: number }
  | { readonly kind: 'regex'; readonly stepsPerCharacter: number }
  /** `$not`, `$all` members: queries sift applies to the value itself. */
  | { readonly kind: 'query'; readonly queries: readonly QueryPlan[] }
  /** `$elemMatch`: its query on each element of an array value. */
  | { readonly kind: 'elements'; readonly query: QueryPlan };

const isScalar = (value: unknown) => typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
const isVanilla = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && (Array.isArray(value) || Object.getPrototypeOf(value) === Object.prototype);
const isOperators = (value: unknown): value is Record<string, unknown> =>
  isVanilla(value) && !Array.isArray(value) && Object.keys(value).some((key) => key.startsWith('$'));

/** The plan of a validated condition, made once per rule with its compiled test. */
export function planOf(query: unknown): QueryPlan {
  if (!isVanilla(query)) return { self: [{ kind: 'compare', comparisons: 1 }], fields: [] };
  const self: OperationPlan[] = [];
  const fields: Array<QueryPlan['fields'][number]> = [];
  for (const [key, value] of Object.entries(query)) {
    if (key.startsWith('$')) self.push(...operationPlan(key, value, query));
    else fields.push({ path: key.split('.'), where: key, operations: fieldOperations(value) });
  }
  return { self, fields };
}

function fieldOperations(value: unknown): OperationPlan[] {
  if (!isOperators(value)) return [{ kind: 'compare', comparisons: 1 }];
  return Object.entries(value).flatMap(([operator, operand]) => operationPlan(operator, operand, value));
}

function operationPlan(operator: string, operand: unknown, owner: Record<string, unknown>): OperationPlan[] {
  const list = Array.isArray(operand) ? operand : [operand];
  switch (operator) {
    case '$and':
    case '$or':
    case '$nor':
    case '$all':
      return [{ kind: 'query', queries: list.map(planOf) }];
    case '$not':
      // A pattern alone is a $regex, as condition.ts runs it.
      return [{ kind: 'query', queries: [planOf(typeof operand === 'string' ? { $regex: operand } : operand)] }];
    case '$elemMatch':
      return [{ kind: 'elements', query: planOf(operand) }];
    case '$in':
    case '$nin':
      // Lists of scalars are one lookup in a Set (condition.ts); others compare each listed value.
      return [{ kind: 'compare', comparisons: list.every(isScalar) ? 0 : list.length }];
    case '$exists':
    case '$size':
      return [{ kind: 'compare', comparisons: 0 }];
    case '$regex':
      return [{ kind: 'regex', stepsPerCharacter: regexSteps(String(operand), typeof owner.$options === 'string' ? owner.$options : '') }];
    case '$options':
      return [];
    default:
      return [{ kind: 'compare', comparisons: 1 }];
  }
}

/** A pattern RE2 cannot run never matches and costs nothing (condition.ts). */
function regexSteps(pattern: string, flags: string): number {
  try {
    return compileLinearRegex(pattern, flags).stepsPerCharacter;
  } catch (error) {
    if (error instanceof UnsupportedRegexError) return 0;
    throw error;
  }
}

/** Counts against `budget` what testing the planned condition on `document` costs; `OverBudget` stops it. */
export function spendOn(plan: QueryPlan, document: object, budget: WorkBudget, sizes: WeakMap<object, number>): void {
  new CostWalk(budget, sizes).query(plan, document, 'condition');
}

class CostWalk {
  constructor(
    private readonly budget: WorkBudget,
    private readonly sizes: WeakMap<object, number>,
  ) {}

  query(plan: QueryPlan, value: unknown, where: string): void {
    if (plan.self.length > 0) this.walk(value, [], 0, (found) => this.operations(plan.self, found, where));
    for (const field of plan.fields) this.walk(value, field.path, 0, (found) => this.operations(field.operations, found, field.where));
  }

  private operations(plans: readonly OperationPlan[], value: unknown, where: string): void {
    for (const plan of plans) {
      switch (plan.kind) {
        case 'compare': {
          const members = plan.comparisons === 0 ? 0 : plan.comparisons * this.sizeOf(value);
          this.budget.spend(VISIT_STEPS + MEMBER_STEPS * members, () =>
            members > 1000 ? `comparisons at ${where} over a value of ${this.sizeOf(value)} members` : `comparisons at ${where}`,
          );
          break;
        }
        case 'regex': {
          const length = typeof value === 'string' ? value.length : 0;
          this.budget.spend(
            VISIT_STEPS + plan.stepsPerCharacter * length,
            () => `$regex at ${where} (${plan.stepsPerCharacter} steps a character) on a string of ${length} characters`,
          );
          break;
        }
        case 'query':
          for (const query of plan.queries) this.query(query, value, where);
          break;
        case 'elements':
          this.budget.spend(VISIT_STEPS, () => `$elemMatch at ${where}`);
          if (Array.isArray(value)) for (const element of value as unknown[]) this.query(plan.query, element, where);
          break;
      }
    }
  }

  /** sift's walk along a key path: an array met on the way is walked element by element, then as itself. */
  private walk(item: unknown, path: readonly string[], depth: number, found: (value: unknown) => void): void {
    this.budget.spend(WALK_STEPS);
    const key = path[depth];
    if (Array.isArray(item) && Number.isNaN(Number(key)) && !isProperty(item, key)) {
      for (const element of item as unknown[]) this.walk(element, path, depth, found);
    }
    if (depth === path.length || item === null || item === undefined) {
      found(item);
      return;
    }
    this.walk(key === undefined ? undefined : Reflect.get(Object(item), key), path, depth + 1, found);
  }

  /** Values in a value, itself included: what copying or comparing it may touch. */
  private sizeOf(value: unknown): number {
    if (typeof value !== 'object' || value === null) return 1;
    const known = this.sizes.get(value);
    if (known !== undefined) return known;
    let size = 1;
    for (const member of Object.values(value)) size += this.sizeOf(member);
    this.sizes.set(value, size);
    return size;
  }
}

function isProperty(item: object, key: string | undefined): boolean {
  return key !== undefined && Object.hasOwn(item, key) && typeof Reflect.get(item, key) !== 'function';
}
