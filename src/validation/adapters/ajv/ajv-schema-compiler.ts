import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import * as ajvFormats from 'ajv-formats';
import type { Violation } from '../../../shared/contracts/data-events.js';
import { ValidationError } from '../../../shared/errors.js';
import { compileLinearRegex } from '../../../shared/linear-regex.js';
import { schemaCostProblem } from './schema-cost.js';
import type { SchemaCompiler } from '../../application/ports.js';
import type { SchemaDocument } from '../../domain/schema-registry.js';

// ajv-formats is CommonJS: under ESM its plugin function arrives as the default export.
const addFormats = ajvFormats.default as unknown as (ajv: Ajv2020) => Ajv2020;

/** JSON Schema draft 2020-12 through ajv; compiled checks are cached per schema version. */
export function ajvSchemaCompiler(): SchemaCompiler {
  // strict:false accepts annotation keywords users commonly add (examples, $comment...).
  // `pattern` and `patternProperties` run on RE2 (linear time): a user's schema cannot stall the server.
  const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: true, code: { regExp: linearRegExpEngine } });
  addFormats(ajv);
  replaceUniqueItems(ajv);
  const cache = new Map<string, (payload: unknown) => Violation[]>();

  return {
    compile(schema: SchemaDocument, cacheKey?: string) {
      const cached = cacheKey === undefined ? undefined : cache.get(cacheKey);
      if (cached) return cached;
      if (!ajv.validateSchema(schema)) throw invalidSchema(ajv.errors ?? []);
      // Before ajv compiles it: the cost of a payload's check is bounded, or the schema is refused.
      const costly = schemaCostProblem(schema);
      if (costly !== undefined) {
        throw new ValidationError('validation.invalid-schema', `schema is too costly to check: ${costly}`, [
          { path: 'schema', message: costly },
        ]);
      }
      let validate;
      try {
        validate = ajv.compile(schema);
      } catch (error) {
        throw new ValidationError('validation.invalid-schema', `schema cannot be compiled: ${(error as Error).message}`, [
          { path: 'schema', message: (error as Error).message },
        ]);
      }
      const check = (payload: unknown): Violation[] => (validate(payload) ? [] : (validate.errors ?? []).map(toViolation));
      if (cacheKey !== undefined) cache.set(cacheKey, check);
      return check;
    },
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

const linearRegExpEngine = Object.assign((pattern: string, flags: string) => compileLinearRegex(pattern, flags), {
  code: 'compileLinearRegex',
});

function toViolation(error: ErrorObject): Violation {
  const params = error.params as { missingProperty?: string; additionalProperty?: string };
  const field = params.missingProperty ?? params.additionalProperty;
  const path = ['payload', ...error.instancePath.split('/').filter(Boolean), ...(field ? [field] : [])].join('.');
  // One entry per missing field with a plain message, as every endpoint reports it.
  const message = error.keyword === 'required' ? 'is required' : (error.message ?? 'is invalid');
  return { path, rule: error.keyword, message };
}

function invalidSchema(errors: ErrorObject[]): ValidationError {
  const violations = errors.map((e) => ({ path: `schema${e.instancePath.replaceAll('/', '.')}`, message: e.message ?? 'is invalid' }));
  return new ValidationError(
    'validation.invalid-schema',
    `not a valid JSON Schema (draft 2020-12): ${violations.map((v) => `${v.path} ${v.message}`).join('; ')}`,
    violations,
  );
}
