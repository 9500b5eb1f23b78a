import * as siftNamespace from 'sift';
import { ValidationError, type Violation } from '../../shared/errors.js';
import { compileLinearRegex, linearRegexSize, UnsupportedRegexError, type LinearRegex } from '../../shared/linear-regex.js';
import type { WorkBudget } from '../../shared/work-budget.js';
import { planOf, spendOn } from './condition-cost.js';

/**
 * Rule conditions are MongoDB-style queries over the event document. Only operators that compare
 * data are allowed: anything that could run code ($where, $function, $expr...) is refused when the
 * rule is saved, as is any operator we do not know.
 */
export type Condition = { readonly [key: string]: unknown };

// sift is CommonJS: under ESM its exports arrive on `default`.
const sift = (siftNamespace as unknown as { default: typeof siftNamespace }).default;

/**
 * `$regex` on RE2 (linear time) instead of sift's RegExp: a rule's pattern runs on every event of
 * its application, on the ingest path, so a backtracking pattern would stall every request.
 */
function linearRegexOperation(pattern: unknown, ownerQuery: Record<string, unknown>, options: unknown) {
  const flags = typeof ownerQuery.$options === 'string' ? ownerQuery.$options : '';
  const regex = linearRegexOrNone(String(pattern), flags);
  const test = (value: unknown) => regex !== undefined && typeof value === 'string' && regex.test(value);
  return sift.createEqualsOperation(test, ownerQuery, options as Parameters<typeof sift.createEqualsOperation>[2]);
}

/**
 * Saving refuses patterns RE2 cannot run; one stored before that rule existed never matches, rather
 * than failing every ingest of its application.
 */
function linearRegexOrNone(pattern: string, flags: string): LinearRegex | undefined {
  try {
    return compileLinearRegex(pattern, flags);
  } catch (error) {
    if (error instanceof UnsupportedRegexError) return undefined;
    throw error;
  }
}

/** How sift drives an operation (its own type for it is not exported). */
interface SiftOperation {
  keep: boolean;
  done: boolean;
  propop: boolean;
  reset(): void;
  next(item: unknown, key?: unknown, owner?: unknown, root?: boolean, leaf?: boolean): void;
}
type SiftOptions = Parameters<typeof sift.createEqualsOperation>[2];
type OperationArgs = [params: unknown, ownerQuery: Record<string, unknown>, options: SiftOptions, name: string];

const isScalar = (value: unknown) => typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';

/**
 * `$in` over strings, numbers and booleans as one lookup in a Set. sift tries every listed value
 * against every value at the path, so a long list and a long array in one event multiplied into
 * seconds on the ingest path. Lists with null, objects or arrays keep sift's own comparison.
 */
function setInOperation(...[params, ownerQuery, options, name]: OperationArgs): SiftOperation {
  const values = Array.isArray(params) ? params : [params];
  if (!values.every(isScalar)) return sift.$in(params, ownerQuery, options, name);
  const set = new Set<unknown>(values);
  return sift.createEqualsOperation((value: unknown) => set.has(value), ownerQuery, options);
}

/** `$nin`, the complement of `setInOperation` over every value at the path, as sift's `$nin` is of its `$in`. */
function setNinOperation(...[params, ownerQuery, options, name]: OperationArgs): SiftOperation {
  const values = Array.isArray(params) ? params : [params];
  if (!values.every(isScalar)) return sift.$nin(params, ownerQuery, options, name);
  const inner = setInOperation(params, ownerQuery, options, name);
  const operation = {
    propop: true,
    keep: true,
    done: false,
    reset() {
      operation.keep = true;
      operation.done = false;
      inner.reset();
    },
    next(...args: Parameters<SiftOperation['next']>) {
      inner.next(...args);
      if (inner.keep) {
        operation.keep = false;
        operation.done = true;
      }
    },
  };
  return operation;
}

/** `$not` with a pattern alone means "does not match it", as in MongoDB; sift would compare it as text. */
function notOperation(...[params, ownerQuery, options, name]: OperationArgs): SiftOperation {
  return sift.$not(typeof params === 'string' ? { $regex: params } : params, ownerQuery, options, name);
}

/** The only operations the compiled tester knows: $where and friends do not exist for it at all. */
const OPERATIONS = {
  $eq: sift.$eq,
  $ne: sift.$ne,
  $gt: sift.$gt,
  $gte: sift.$gte,
  $lt: sift.$lt,
  $lte: sift.$lte,
  $in: setInOperation,
  $nin: setNinOperation,
  $exists: sift.$exists,
  $regex: linearRegexOperation,
  $options: sift.$options,
  $not: notOperation,
  $size: sift.$size,
  $all: sift.$all,
  $elemMatch: sift.$elemMatch,
  $and: sift.$and,
  $or: sift.$or,
  $nor: sift.$nor,
};

const FIELD_OPERATORS = new Set([
  '$eq',
  '$ne',
  '$gt',
  '$gte',
  '$lt',
  '$lte',
  '$in',
  '$nin',
  '$exists',
  '$regex',
  '$options',
  '$not',
  '$size',
  '$all',
  '$elemMatch',
]);
const LOGICAL_OPERATORS = new Set(['$and', '$or', '$nor']);
const MAX_DEPTH = 8;
const MAX_REGEX = 256;
// Every $regex of a rule runs on each event of its application, on the ingest path, at a cost of its
// RE2 instructions per character: together they stay within ten of the largest one.
const MAX_REGEX_INSTRUCTIONS = 10_000;
// Each comparison walks every value at its path: 5,000 $or branches over an array of 60,000 took 50 s
// of the HTTP thread for one event. A listed value of $all is a comparison of its own; $in and $nin are
// one lookup each.
const MAX_COMPARISONS = 100;
// $all still compares each listed value with each value at the path: its list stays short.
const MAX_LIST: Readonly<Record<string, number>> = { $in: 10_000, $nin: 10_000, $all: 100 };
// Path segments that name an object's prototype machinery rather than its data: `payload.constructor.name`
// would read "Object" from every event.
const PROTOTYPE_KEYS = new Set(Object.getOwnPropertyNames(Object.prototype));

export function validateCondition(condition: unknown): Condition {
  const violations: Violation[] = [];
  if (condition === null || condition === undefined) return {};
  if (!isPlainObject(condition)) {
    violations.push({ path: 'condition', message: 'must be an object' });
  } else {
    const tally = { instructions: 0, comparisons: 0 };
    checkQuery(condition, 'condition', 0, violations, tally);
    if (tally.instructions > MAX_REGEX_INSTRUCTIONS) {
      violations.push({
        path: 'condition',
        message: `its $regex patterns compile to ${tally.instructions} RE2 instructions together, more than ${MAX_REGEX_INSTRUCTIONS}`,
      });
    }
    if (tally.comparisons > MAX_COMPARISONS) {
      violations.push({
        path: 'condition',
        message: `makes ${tally.comparisons} comparisons, more than ${MAX_COMPARISONS} (use $in for a list of values)`,
      });
    }
  }
  if (violations.length === 0) {
    // What passes the checks above must also compile: a throw there would fail every event of the application.
    try {
      compileCondition(condition as Condition);
    } catch (error) {
      violations.push({ path: 'condition', message: `cannot be compiled: ${(error as Error).message}` });
    }
  }
  if (violations.length > 0) {
    throw new ValidationError('routing.invalid-condition', violations.map((v) => `${v.path}: ${v.message}`).join('; '), violations);
  }
  return condition as Condition;
}

/**
 * Why a stored condition cannot run under today's limits (operators, patterns RE2 can run, their
 * size, comparisons...), or null when it can. A rule saved by an older release may hold one that
 * saving refuses today: it must not run on the ingest path, where those limits protect every request.
 */
export function conditionProblem(condition: Condition): string | null {
  try {
    validateCondition(condition);
    return null;
  } catch (error) {
    if (error instanceof ValidationError) return error.message;
    throw error;
  }
}

/**
 * A compiled condition: tests an event's document, having first counted what the test costs against
 * `budget` (`condition-cost.ts`). When the cost does not fit, `OverBudget` is thrown before sift runs.
 * `sizes` remembers the sizes of the document's values across the rules tested on it.
 */
export type ConditionTest = (document: object, budget: WorkBudget, sizes?: WeakMap<object, number>) => boolean;

/** Compiles a validated condition once; the returned test is what runs on the ingest path. */
export function compileCondition(condition: Condition): ConditionTest {
  if (Object.keys(condition).length === 0) return () => true;
  const test = sift.createQueryTester(condition, { operations: OPERATIONS });
  const plan = planOf(condition);
  return (document, budget, sizes = new WeakMap()) => {
    spendOn(plan, document, budget, sizes);
    return test(document);
  };
}

/** What running a condition on an event costs, added up as it is checked: comparisons, and RE2 instructions of its $regex. */
interface ConditionTally {
  instructions: number;
  comparisons: number;
}

function checkQuery(query: Record<string, unknown>, path: string, depth: number, out: Violation[], tally: ConditionTally): void {
  if (depth > MAX_DEPTH) {
    out.push({ path, message: `nests deeper than ${MAX_DEPTH} levels` });
    return;
  }
  for (const [key, value] of Object.entries(query)) {
    const at = `${path}.${key}`;
    if (key.startsWith('$')) {
      if (!LOGICAL_OPERATORS.has(key)) {
        out.push({ path: at, message: `operator ${key} is not allowed here (top level allows ${[...LOGICAL_OPERATORS].join(', ')})` });
      } else if (!Array.isArray(value) || value.length === 0 || !value.every(isPlainObject)) {
        out.push({ path: at, message: `${key} needs a non-empty array of conditions` });
      } else {
        value.forEach((sub, i) => checkQuery(sub as Record<string, unknown>, `${at}.${i}`, depth + 1, out, tally));
      }
      continue;
    }
    tally.comparisons += 1;
    if (key.length === 0 || key.length > 256) out.push({ path: at, message: 'field paths must be 1-256 characters' });
    // `payload..total` is a typing mistake far more often than a key named "".
    else if (key.split('.').includes('')) out.push({ path: at, message: 'field paths may not have an empty segment' });
    else if (key.split('.').some((segment) => PROTOTYPE_KEYS.has(segment)))
      out.push({
        path: at,
        message: `field paths may not name ${[...PROTOTYPE_KEYS].filter((k) => key.split('.').includes(k)).join(', ')}`,
      });
    if (isPlainObject(value) && Object.keys(value).some((k) => k.startsWith('$'))) checkOperators(value, at, depth + 1, out, tally);
  }
}

function checkOperators(operators: Record<string, unknown>, path: string, depth: number, out: Violation[], tally: ConditionTally): void {
  if (depth > MAX_DEPTH) {
    out.push({ path, message: `nests deeper than ${MAX_DEPTH} levels` });
    return;
  }
  for (const [operator, operand] of Object.entries(operators)) {
    const at = `${path}.${operator}`;
    if (!operator.startsWith('$')) {
      out.push({ path: at, message: 'cannot mix operators and plain fields in one object' });
      continue;
    }
    if (!FIELD_OPERATORS.has(operator)) {
      out.push({ path: at, message: `unknown or forbidden operator ${operator} (allowed: ${[...FIELD_OPERATORS].join(' ')})` });
      continue;
    }
    switch (operator) {
      case '$in':
      case '$nin':
      case '$all':
        if (!Array.isArray(operand)) out.push({ path: at, message: `${operator} needs an array` });
        // MongoDB matches nothing with it; the matcher would match every event, and route them all.
        else if (operator === '$all' && operand.length === 0) out.push({ path: at, message: '$all needs at least one value' });
        else if (operand.length > (MAX_LIST[operator] ?? 0))
          out.push({ path: at, message: `${operator} lists at most ${MAX_LIST[operator]} values` });
        // sift refuses an operator among the values only when it compiles the rule: on the ingest path.
        else if (operand.some((value) => holdsOperator(value))) out.push({ path: at, message: `${operator} lists values, not operators` });
        else if (operator === '$all') tally.comparisons += operand.length;
        break;
      case '$exists':
        if (typeof operand !== 'boolean') out.push({ path: at, message: '$exists needs true or false' });
        break;
      case '$size':
        if (!Number.isInteger(operand)) out.push({ path: at, message: '$size needs an integer' });
        break;
      case '$regex':
        checkRegex(operand, typeof operators.$options === 'string' ? operators.$options : '', at, out, tally);
        break;
      case '$options':
        if (typeof operand !== 'string' || !/^[imsu]*$/.test(operand))
          out.push({ path: at, message: '$options may only hold i, m, s and u' });
        else if (!('$regex' in operators)) out.push({ path: at, message: '$options needs a $regex beside it' });
        break;
      case '$not':
        if (typeof operand === 'string') checkRegex(operand, '', at, out, tally);
        else if (isPlainObject(operand) && Object.keys(operand).length > 0) checkOperators(operand, at, depth + 1, out, tally);
        else out.push({ path: at, message: '$not needs an operator object' });
        break;
      case '$elemMatch':
        if (!isPlainObject(operand)) out.push({ path: at, message: '$elemMatch needs a condition object' });
        else if (Object.keys(operand).every((k) => k.startsWith('$'))) checkOperators(operand, at, depth + 1, out, tally);
        else checkQuery(operand, at, depth + 1, out, tally);
        break;
      default:
        if (isPlainObject(operand)) out.push({ path: at, message: `${operator} compares with a value, not an object` });
    }
  }
}

function checkRegex(pattern: unknown, flags: string, path: string, out: Violation[], tally: ConditionTally): void {
  if (typeof pattern !== 'string' || pattern.length > MAX_REGEX) {
    out.push({ path, message: `$regex needs a pattern string of at most ${MAX_REGEX} characters` });
    return;
  }
  try {
    compileLinearRegex(pattern, flags);
    tally.instructions += linearRegexSize(pattern, flags) ?? 0;
  } catch (error) {
    out.push({ path, message: `unsupported regular expression: ${(error as Error).message}` });
  }
}

/** Whether a value holds an operator (a key starting with `$`) at any depth, as sift would read it. */
function holdsOperator(value: unknown, depth = 0): boolean {
  if (depth > MAX_DEPTH) return true;
  if (Array.isArray(value)) return value.some((item) => holdsOperator(item, depth + 1));
  if (typeof value !== 'object' || value === null) return false;
  return Object.entries(value).some(([key, inner]) => key.startsWith('$') || holdsOperator(inner, depth + 1));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.getPrototypeOf(value) === Object.prototype;
}
