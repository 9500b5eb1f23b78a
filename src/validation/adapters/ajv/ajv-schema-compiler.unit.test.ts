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
    for (const pattern of ['(a)\\1', 'a(?=b)', '(?<!x)y']) {
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
