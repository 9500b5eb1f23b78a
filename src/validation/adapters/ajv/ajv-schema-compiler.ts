import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import * as ajvFormats from 'ajv-formats';
import type { Violation } from '../../../shared/contracts/data-events.js';
import { ValidationError } from '../../../shared/errors.js';
import { compileLinearRegex } from '../../../shared/linear-regex.js';
import { OverBudget, workBudget, type WorkBudget } from '../../../shared/work-budget.js';
import { replaceMultipleOf } from './decimal-multiple-of.js';
import { payloadWork, schemaCostProblem } from './schema-cost.js';
import { unknownKeywords } from './unknown-keywords.js';
import { linearUrlFormat } from './url-format.js';
import type { SchemaCompiler } from '../../application/ports.js';
import type { SchemaDocument } from '../../domain/schema-registry.js';

// ajv-formats is CommonJS: under ESM its plugin function arrives as the default export.
const addFormats = ajvFormats.default as unknown as (ajv: Ajv2020) => Ajv2020;

/**
 * What checking one item may cost the storage thread, in steps (`work-budget.ts`, about 15 ns each):
 * a little per item and per character of its payload, so a batch of items costs at most in
 * proportion to its size. A payload of 1 MB may take 32,000,000 steps, about 0.5 s at worst.
 * Each subschema check, list lookup and pattern character counts (`schema-cost.ts`, `linear-regex.ts`).
 */
export const VALIDATION_BASE_STEPS = 10_000;
export const VALIDATION_STEPS_PER_CHARACTER = 32;
/** Reporting a violation: ajv's error object, and ours in the verdict. */
const STEPS_PER_VIOLATION = 200;

/**
 * The code ajv may write for one schema, in characters. Linear in the schema once no `$ref` is
 * copied into its referrers (a plain 64 KB schema writes 1 to 2.5 MB); a bound all the same, because
 * one function too large for the stack overflowed it at its first call.
 */
export const MAX_CODE_CHARACTERS = 4_000_000;

/** JSON Schema draft 2020-12 through ajv; compiled checks are cached per schema version. */
export function ajvSchemaCompiler({ maxCodeCharacters = MAX_CODE_CHARACTERS } = {}): SchemaCompiler {
  // The item being checked: what its patterns may still spend, and the string one was refused on.
  // Checks run one at a time, on one thread.
  let spending: WorkBudget | undefined;
  let refusedText: string | undefined;
  // `pattern` and `patternProperties` run on RE2 (linear time), counted against the item's budget.
  const regExp = Object.assign(
    (pattern: string, flags: string) => {
      const regex = compileLinearRegex(pattern, flags);
      return {
        // ajv keeps one compiled pattern per text of this.
        toString: () => `/${pattern}/${flags}`,
        test(text: string) {
          try {
            spending?.spend(
              1 + regex.stepsPerCharacter * text.length,
              () =>
                `pattern ${JSON.stringify(shortened(pattern))} (${regex.stepsPerCharacter} steps a character) on a string of ${text.length} characters`,
            );
          } catch (error) {
            refusedText = text;
            throw error;
          }
          return regex.test(text);
        },
      };
    },
    { code: 'compileLinearRegex' },
  );
  // strict:false accepts annotation keywords users commonly add (examples, $comment...). One instance
  // reports every violation; the other stops at the first, for items whose every violation would cost too much to list.
  // What ajv says while it compiles: under strict:false an unknown `format` is only a warning, which ajv
  // printed to stdout, outside the log, and the check was skipped for every item.
  const warnings: string[] = [];
  const logger = {
    log: () => undefined,
    warn: (...args: unknown[]) => void warnings.push(args.map(String).join(' ')),
    error: () => undefined,
  };
  // What ajv may still write for the schema being compiled (not for its own meta-schemas).
  let codeLeft = Number.POSITIVE_INFINITY;
  const countCode = (code: string) => {
    codeLeft -= code.length;
    if (codeLeft < 0) {
      throw new Error(`it compiles to more than ${maxCodeCharacters.toLocaleString('en')} characters of code: simplify or split it`);
    }
    return code;
  };
  const newAjv = (allErrors: boolean) => {
    // inlineRefs: false compiles a definition once, called from each $ref: copied into every referrer,
    // 100 $refs to a 100-key definition (6.5 KB) became 7 MB of code and 5 s of compiling.
    const ajv = new Ajv2020({
      allErrors,
      strict: false,
      inlineRefs: false,
      validateFormats: true,
      // ajv's pass that drops unused names took half of a compile, for a tenth more code.
      code: { regExp, process: countCode, optimize: false },
      logger,
    });
    addFormats(ajv);
    ajv.addFormat('url', linearUrlFormat);
    replaceUniqueItems(ajv);
    replaceMultipleOf(ajv);
    return ajv;
  };
  const ajv = newAjv(true);
  // What ajv holds before compiling anything: its meta-schemas, by `$id`.
  const ownIds = new Set([...Object.keys(ajv.schemas), ...Object.keys(ajv.refs)]);
  let firstOnly: Ajv2020 | undefined;
  // Checks by schema version, the most recently used last; the oldest go past CACHED_CHECKS.
  const cache = new Map<string, (payload: unknown) => Violation[]>();
  /**
   * Compiles without keeping: ajv would hold every schema object it compiled (and its code) for the
   * life of the instance, about a megabyte for a large schema at every save, and never let it go.
   */
  const compileOnce = (instance: Ajv2020, schema: SchemaDocument): ValidateFunction => {
    // ajv removes by `$id`: a schema naming one of its meta-schemas would take that one with it.
    const id = typeof schema === 'object' && typeof schema.$id === 'string' ? schema.$id.replace(/#$/, '') : undefined;
    if (id !== undefined && ownIds.has(id)) {
      throw new Error(`its $id "${id}" is the id of a schema Intake holds (a meta-schema); give the schema an id of its own`);
    }
    codeLeft = maxCodeCharacters;
    try {
      return instance.compile(schema);
    } finally {
      codeLeft = Number.POSITIVE_INFINITY;
      // ajv keys what it keeps by the schema object; a boolean schema is not kept (and not removable).
      if (typeof schema === 'object') instance.removeSchema(schema);
      forgetIdsOf(instance, ownIds);
    }
  };

  return {
    compile(schema: SchemaDocument, cacheKey?: string) {
      const cached = cacheKey === undefined ? undefined : cache.get(cacheKey);
      if (cached && cacheKey !== undefined) {
        cache.delete(cacheKey);
        cache.set(cacheKey, cached);
        return cached;
      }
      const draft = unsupportedDraft(schema);
      if (draft !== undefined) throw draft;
      let valid: boolean;
      try {
        valid = ajv.validateSchema(schema) as boolean;
      } catch (error) {
        // ajv throws, rather than reports, on what it cannot check a schema against.
        throw new ValidationError('validation.invalid-schema', `not a valid JSON Schema (draft 2020-12): ${(error as Error).message}`, [
          { path: 'schema', message: (error as Error).message },
        ]);
      }
      if (!valid) throw invalidSchema(ajv.errors ?? []);
      // Before ajv compiles it: the cost of a payload's check is bounded, or the schema is refused.
      const costly = schemaCostProblem(schema);
      if (costly !== undefined) {
        throw new ValidationError('validation.invalid-schema', `schema is too costly to check: ${costly}`, [
          { path: 'schema', message: costly },
        ]);
      }
      let validate: ValidateFunction;
      warnings.length = 0;
      try {
        validate = compileOnce(ajv, schema);
      } catch (error) {
        throw new ValidationError('validation.invalid-schema', `schema cannot be compiled: ${(error as Error).message}`, [
          { path: 'schema', message: (error as Error).message },
        ]);
      }
      // Refused when it is saved (no cache key); a version stored before keeps being used as it was.
      if (cacheKey === undefined) refuseWhatAjvIgnores(schema, ajv, warnings);
      const loop = endlessOnAnyValue(validate);
      if (loop !== undefined) {
        throw new ValidationError('validation.invalid-schema', `schema cannot be used: ${loop}`, [{ path: 'schema', message: loop }]);
      }
      const work = payloadWork(schema);
      let validateFirst: ValidateFunction | undefined;
      const check = (payload: unknown): Violation[] => {
        const budget = workBudget(VALIDATION_BASE_STEPS + VALIDATION_STEPS_PER_CHARACTER * charactersOf(payload));
        try {
          const violations = work(payload, (steps) => budget.spend(steps, () => 'the subschemas that apply to its values'));
          spending = budget;
          if (fits(budget, violations * STEPS_PER_VIOLATION)) return validate(payload) ? [] : (validate.errors ?? []).map(toViolation);
          // Listing every violation could cost more than the item may: ajv stops at the first.
          validateFirst ??= compileOnce((firstOnly ??= newAjv(false)), schema);
          if (validateFirst(payload)) return [];
          return [
            ...(validateFirst.errors ?? []).map(toViolation),
            {
              path: 'payload',
              rule: 'cost',
              message: `there may be more violations: listing them all would take more than the ${budget.limit.toLocaleString('en')} steps this item may`,
            },
          ];
        } catch (error) {
          if (error instanceof OverBudget) return [tooCostly(error, payload, refusedText)];
          // A reference back to the root that only some values reach: this item cannot be judged, and
          // is judged invalid rather than failing the subscriber on every item of the type.
          if (error instanceof RangeError) {
            const message = isEndlessRecursion(error) ? ENDLESS : `the schema cannot be applied to this item: ${error.message}`;
            return [{ path: 'schema', rule: 'schema-refused', message }];
          }
          throw error;
        } finally {
          spending = undefined;
          refusedText = undefined;
        }
      };
      if (cacheKey !== undefined) {
        cache.set(cacheKey, check);
        const oldest = cache.size > CACHED_CHECKS ? cache.keys().next().value : undefined;
        if (oldest !== undefined) cache.delete(oldest);
      }
      return check;
    },
  };
}

const ENDLESS = 'the schema applies itself to the same value without end (a $ref, $recursiveRef or $dynamicRef back to where it started)';

/**
 * Why a compiled check never ends on the simplest values, if it does: a reference the cost analysis
 * reads as going nowhere (`#/`, an unresolved `$dynamicRef`, `$recursiveRef`) sends ajv back to the
 * root, on the same value, until the stack runs out. Refused when saved, it cannot park every item.
 */
function endlessOnAnyValue(validate: ValidateFunction): string | undefined {
  // Enough frames to see a loop through many $refs repeat.
  const traceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 200;
  try {
    for (const value of [{}, [], null, 0, '', true]) {
      try {
        validate(value);
      } catch (error) {
        if (error instanceof RangeError)
          return isEndlessRecursion(error) ? ENDLESS : `checking the value ${JSON.stringify(value)} fails: ${error.message}`;
      }
    }
    return undefined;
  } finally {
    Error.stackTraceLimit = traceLimit;
  }
}

/**
 * Whether the stack ran out because a check called itself: a call, at the same place, on the stack
 * twice. One function too large for the stack also overflows it, at its first call, and was reported
 * as a loop. The frames of the callers, which may recurse of their own, are left out.
 */
export function isEndlessRecursion(error: unknown): boolean {
  if (!(error instanceof RangeError) || !/call stack/i.test(error.message)) return false;
  const callers = new Set(framesOf(stackHere()));
  const frames = framesOf(error.stack).filter((frame) => !callers.has(frame));
  return new Set(frames).size < frames.length;
}

function stackHere(): string | undefined {
  const traceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = Number.POSITIVE_INFINITY;
  try {
    return new Error().stack;
  } finally {
    Error.stackTraceLimit = traceLimit;
  }
}

const framesOf = (stack: string | undefined) => (stack ?? '').split('\n').filter((line) => line.trimStart().startsWith('at '));

/** Drops every id a compile left in ajv (nested `$id`s stayed, and were taken for meta-schemas later). */
function forgetIdsOf(instance: Ajv2020, ownIds: ReadonlySet<string>): void {
  for (const id of [...Object.keys(instance.refs), ...Object.keys(instance.schemas)]) if (!ownIds.has(id)) instance.removeSchema(id);
}

/**
 * What ajv would skip in a schema being saved: an unknown `format` (the check was skipped for every
 * item) and unknown keywords (a misspelt `required` let every item through).
 */
function refuseWhatAjvIgnores(schema: SchemaDocument, ajv: Ajv2020, warnings: readonly string[]): void {
  const unknownFormat = warnings.find((warning) => warning.startsWith('unknown format'));
  if (unknownFormat !== undefined) {
    const problem = `${unknownFormat.replace(/ ignored.*$/, '')}: formats are ${Object.keys(ajv.formats).join(', ')}`;
    throw new ValidationError('validation.invalid-schema', `schema names ${problem}`, [{ path: 'schema', message: problem }]);
  }
  const unknown = unknownKeywords(schema, (keyword) => ajv.RULES.keywords[keyword] === true);
  if (unknown.length > 0) {
    const names = unknown.map((keyword) => JSON.stringify(keyword)).join(', ');
    const problem = `unknown keywords ${names}: draft 2020-12 has no such keyword (misspelt?); name annotations of your own x-…`;
    throw new ValidationError('validation.invalid-schema', `schema has ${problem}`, [{ path: 'schema', message: problem }]);
  }
}

/** Compiled checks kept at most: the versions in use stay, old ones are compiled again if ever needed. */
const CACHED_CHECKS = 1000;

/** Whether `steps` more fit in the budget; counted when they do. */
function fits(budget: WorkBudget, steps: number): boolean {
  if (budget.spent + steps > budget.limit) return false;
  budget.spend(steps);
  return true;
}

/** The length of the payload's JSON text: what its budget grows with. */
function charactersOf(payload: unknown): number {
  return JSON.stringify(payload)?.length ?? 0;
}

const shortened = (text: string) => (text.length > 60 ? `${text.slice(0, 57)}...` : text);

/** Where in the payload a string is, as a key or a value, written as violations write paths. */
function pathOfText(value: unknown, text: string, path = 'payload'): string | undefined {
  if (value === text) return path;
  if (typeof value !== 'object' || value === null) return undefined;
  for (const [key, member] of Object.entries(value)) {
    if (key === text) return `${path}.${key.length > 60 ? shortened(key) : key}`;
    const found = pathOfText(member, text, `${path}.${key}`);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** The verdict of an item too costly to check: invalid, saying what would have cost too much and where. */
function tooCostly(error: OverBudget, payload: unknown, refusedText: string | undefined): Violation {
  return {
    path: refusedText === undefined ? 'payload' : (pathOfText(payload, refusedText) ?? 'payload'),
    rule: 'cost',
    message:
      `checking this payload against its schema would take more than the ${error.limit.toLocaleString('en')} steps an item of its size may ` +
      `(${error.what ?? 'its values'}): send shorter strings or fewer values, or simplify the schema`,
  };
}

/**
 * `uniqueItems` by one canonical text per item in a Set: ajv compares every pair of items, so an
 * array of 80,000 small objects under a schema asking for unique items held the storage thread for
 * over a minute. Equality is JSON Schema's: same numbers, same keys in any order, same items in order.
 */
function replaceUniqueItems(ajv: Ajv2020): void {
  ajv.removeKeyword('uniqueItems');
  const validate = (unique: boolean, items: unknown[]): boolean => {
    validate.errors = [];
    if (!unique) return true;
    const seen = new Map<string, number>();
    for (let i = 0; i < items.length; i++) {
      const text = canonicalJson(items[i]);
      const first = seen.get(text);
      if (first !== undefined) {
        validate.errors = [
          {
            keyword: 'uniqueItems',
            message: `must NOT have duplicate items (items ## ${first} and ${i} are identical)`,
            params: { i: first, j: i },
          },
        ];
        return false;
      }
      seen.set(text, i);
    }
    return true;
  };
  validate.errors = [] as Array<Partial<ErrorObject>>;
  ajv.addKeyword({ keyword: 'uniqueItems', type: 'array', schemaType: 'boolean', errors: true, validate });
}

/** JSON text in which equal values read the same: object keys sorted, at every depth. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const object = value as Record<string, unknown>;
    return `{${Object.keys(object)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(object[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function toViolation(error: ErrorObject): Violation {
  const params = error.params as {
    missingProperty?: string;
    additionalProperty?: string;
    unevaluatedProperty?: string;
    propertyName?: string;
  };
  const field = params.missingProperty ?? params.additionalProperty ?? params.unevaluatedProperty ?? params.propertyName;
  // The instance path is a JSON pointer: `a~1b` is the member `a/b`.
  const members = error.instancePath
    .split('/')
    .filter(Boolean)
    .map((member) => member.replaceAll('~1', '/').replaceAll('~0', '~'));
  const path = ['payload', ...members, ...(field ? [field] : [])].join('.');
  // One entry per missing field with a plain message, as every endpoint reports it.
  const message = error.keyword === 'required' ? 'is required' : (error.message ?? 'is invalid');
  return { path, rule: error.keyword, message };
}

/** The one draft checked, by its `$schema` URI (with or without the empty fragment, as ajv reads it). */
export const SUPPORTED_DRAFT = 'https://json-schema.org/draft/2020-12/schema';

/**
 * A top-level `$schema` naming another draft (04, 07, 2019-09...) or no URI at all. ajv threw on it
 * ("no schema with key or ref"), which answered 500; and checking an older draft's schema by 2020-12's
 * rules would quietly change what `items`, `dependencies` or `$ref` mean, so it is refused, saying why.
 */
function unsupportedDraft(schema: SchemaDocument): ValidationError | undefined {
  const uri = typeof schema === 'object' ? schema.$schema : undefined;
  if (uri === undefined || (typeof uri === 'string' && uri.replace(/#$/, '') === SUPPORTED_DRAFT)) return undefined;
  const named = typeof uri === 'string' ? JSON.stringify(shortened(uri)) : `a ${uri === null ? 'null' : typeof uri}`;
  const message = `$schema is ${named}: only JSON Schema draft 2020-12 ("${SUPPORTED_DRAFT}") is supported; use that URI or leave $schema out`;
  return new ValidationError('validation.invalid-schema', message, [{ path: 'schema.$schema', message }]);
}

function invalidSchema(errors: ErrorObject[]): ValidationError {
  const violations = errors.map((e) => ({ path: `schema${e.instancePath.replaceAll('/', '.')}`, message: e.message ?? 'is invalid' }));
  return new ValidationError(
    'validation.invalid-schema',
    `not a valid JSON Schema (draft 2020-12): ${violations.map((v) => `${v.path} ${v.message}`).join('; ')}`,
    violations,
  );
}
