import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../shared/errors.js';
import type { SchemaDocument } from '../../domain/schema-registry.js';
import { ajvSchemaCompiler } from './ajv-schema-compiler.js';

const compile = (schema: object) => ajvSchemaCompiler().compile(schema as SchemaDocument);

describe('ajv schema compiler', () => {
  it('checks `pattern` and `patternProperties` on a linear-time engine', () => {
    const check = compile({
      type: 'object',
      properties: { s: { type: 'string', pattern: '(a+)+$' } },
      patternProperties: { '^x-(a+)+$': { type: 'number' } },
    });
    // 16 s of backtracking per call with a JavaScript RegExp; immediate here.
    expect(check({ s: 'a'.repeat(29) + '!' })).toMatchObject([{ path: 'payload.s', rule: 'pattern' }]);
    expect(check({ s: 'a'.repeat(100_000) + '!' })).toHaveLength(1);
    expect(check({ s: 'baaa' })).toEqual([]);
    expect(check({ s: 'ok-aaa', 'x-aa': 'not a number' })).toMatchObject([{ path: 'payload.x-aa', rule: 'type' }]);
  });

  it('refuses a schema whose pattern needs backtracking (backreference, lookaround) when it is registered', () => {
    for (const pattern of ['(a)\\1', 'a(?=b)', '(?<!x)y', '\\pL{1000}'.repeat(28)]) {
      expect(() => compile({ type: 'string', pattern })).toThrow(ValidationError);
    }
    try {
      compile({ type: 'string', pattern: '(a)\\1' });
    } catch (error) {
      expect((error as ValidationError).code).toBe('validation.invalid-schema');
      expect((error as ValidationError).message).toMatch(/RE2/);
    }
  });

  it('reports each missing property as its own entry, with a plain message', () => {
    const check = compile({ type: 'object', required: ['currency', 'total'] });
    expect(check({})).toEqual([
      { path: 'payload.currency', rule: 'required', message: 'is required' },
      { path: 'payload.total', rule: 'required', message: 'is required' },
    ]);
  });
});

describe('uniqueItems', () => {
  const check = compile({ type: 'object', properties: { list: { type: 'array', uniqueItems: true } } });

  it("finds duplicates as JSON Schema defines equality: keys in any order, 1 and 1.0 the same, '1' and 1 not", () => {
    expect(
      check({
        list: [
          { a: 1, b: [1, { c: 2 }] },
          { b: [1.0, { c: 2 }], a: 1 },
        ],
      }),
    ).toMatchObject([
      { path: 'payload.list', rule: 'uniqueItems', message: 'must NOT have duplicate items (items ## 0 and 1 are identical)' },
    ]);
    expect(check({ list: [1, '1', true, null, [1], { 1: 1 }, [[1]], 0, -0.5] })).toEqual([]);
    expect(check({ list: [0, -0] })).toHaveLength(1);
    expect(check({ list: [{ a: null }, {}] })).toEqual([]);
    expect(compile({ type: 'array', uniqueItems: false })([1, 1])).toEqual([]);
  });

  it('checks a long array of objects in one pass', () => {
    // ajv compared every pair: 86 s for 80,000 small objects, holding every write behind it.
    const list = Array.from({ length: 200_000 }, (_, i) => ({ id: i, tag: 'x' }));
    expect(check({ list })).toEqual([]);
    list.push({ tag: 'x', id: 7 });
    expect(check({ list })).toMatchObject([
      { rule: 'uniqueItems', message: 'must NOT have duplicate items (items ## 7 and 200000 are identical)' },
    ]);
  });
});

describe('the cost of checking a payload', () => {
  const refused = (schema: object) => {
    try {
      compile(schema);
    } catch (error) {
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).code).toBe('validation.invalid-schema');
      return (error as ValidationError).message;
    }
    throw new Error('the schema was accepted');
  };
  // Each definition applies the previous one twice to the same value: 2^30 checks of one payload.
  const doubling = (levels: number) => {
    const $defs: Record<string, object> = { d0: { type: 'string' } };
    for (let i = 1; i <= levels; i++) $defs[`d${i}`] = { anyOf: [{ $ref: `#/$defs/d${i - 1}` }, { $ref: `#/$defs/d${i - 1}` }] };
    return { $defs, $ref: `#/$defs/d${levels}` };
  };

  it('refuses a schema whose $refs multiply the subschemas applied to one value (the storage thread ran out of memory)', () => {
    const started = performance.now();
    expect(refused(doubling(30))).toMatch(/too costly.*checks by subschemas would apply to one value/);
    expect(performance.now() - started).toBeLessThan(1000);
    // A few levels stay well within the bound and check as before.
    expect(compile(doubling(5))({})).not.toEqual([]);
    expect(compile(doubling(5))('text')).toEqual([]);
  });

  it('refuses a $ref back to a schema applied to the same value, which never ends', () => {
    expect(refused({ anyOf: [{ $ref: '#' }, { type: 'string' }] })).toMatch(/never end/);
    expect(refused({ $defs: { a: { allOf: [{ $ref: '#/$defs/b' }] }, b: { not: { $ref: '#/$defs/a' } } }, $ref: '#/$defs/a' })).toMatch(
      /never end/,
    );
    expect(refused({ $id: 'https://example.com/s', if: { $ref: 'https://example.com/s' } })).toMatch(/never end/);
  });

  it('refuses subschemas that apply to the same member twice at every level of a payload', () => {
    // 2^depth checks of {"a": {"a": ...}}: each level doubles the schemas applied to the next.
    expect(refused({ allOf: [{ properties: { a: { $ref: '#' } } }, { properties: { a: { $ref: '#' } } }] })).toMatch(/too costly/);
    expect(refused({ patternProperties: { '^a': { $ref: '#' }, a$: { $ref: '#' } } })).toMatch(/too costly/);
  });

  it('counts a pattern by the size of its program: many long patterns on one value are refused', () => {
    const long = { type: 'string', pattern: '\\pL{998}' };
    expect(compile({ allOf: Array.from({ length: 5 }, () => long) })('x'.repeat(998))).toEqual([]);
    expect(refused({ allOf: Array.from({ length: 20 }, () => long) })).toMatch(/one per 10 RE2 instructions/);
    const keys = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`^${i}\\pL{990}`, true]));
    expect(refused({ patternProperties: keys })).toMatch(/too costly/);
  });

  it('accepts recursive schemas whose $refs move into the payload, and large plain ones', () => {
    const tree = compile({
      $defs: {
        node: { type: 'object', properties: { name: { type: 'string' }, children: { type: 'array', items: { $ref: '#/$defs/node' } } } },
      },
      $ref: '#/$defs/node',
    });
    expect(tree({ name: 'a', children: [{ name: 'b', children: [{ name: 1 }] }] })).toMatchObject([{ rule: 'type' }]);
    expect(
      compile({ properties: { left: { $ref: '#' }, right: { $ref: '#' } }, additionalProperties: { $ref: '#' } })({ left: {} }),
    ).toEqual([]);
    const fields = Object.fromEntries(
      Array.from({ length: 2000 }, (_, i) => [`f${i}`, { type: 'object', properties: { v: { type: 'number' } } }]),
    );
    expect(compile({ type: 'object', properties: fields })({ f7: { v: 'x' } })).toMatchObject([{ path: 'payload.f7.v' }]);
    const variants = Array.from({ length: 100 }, (_, i) => ({
      type: 'object',
      required: [`k${i}`],
      properties: { [`k${i}`]: { const: i } },
    }));
    expect(compile({ oneOf: variants })({ k3: 3 })).toEqual([]);
  });
});
