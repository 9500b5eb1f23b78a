import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../shared/errors.js';
import type { SchemaDocument } from '../../domain/schema-registry.js';
import { ajvSchemaCompiler, isEndlessRecursion } from './ajv-schema-compiler.js';

const compile = (schema: object | boolean) => ajvSchemaCompiler().compile(schema as SchemaDocument);

describe('ajv schema compiler', () => {
  it('checks multipleOf in decimals: prices are multiples of 0.01', () => {
    const check = compile({ type: 'number', multipleOf: 0.01 });
    for (const price of [1.13, 19.99, 0.07, 4.35]) expect(check(price), String(price)).toEqual([]);
    expect(check(1.005)).toEqual([{ path: 'payload', rule: 'multipleOf', message: 'must be multiple of 0.01' }]);
  });

  it('names the member a violation is about: unevaluated and badly named properties, and keys holding / or ~', () => {
    const check = compile({ properties: { a: {} }, unevaluatedProperties: false, propertyNames: { pattern: '^[a-z/~]+$' } });
    const paths = check({ a: 1, zzz: 2, BAD: 3 }).map((violation) => `${violation.path} ${violation.rule}`);
    expect(paths).toEqual(expect.arrayContaining(['payload.zzz unevaluatedProperties', 'payload.BAD propertyNames']));
    const nested = compile({ properties: { 'a/b': { properties: { 'c~d': { type: 'string' } } } } });
    expect(nested({ 'a/b': { 'c~d': 1 } })).toEqual([{ path: 'payload.a/b.c~d', rule: 'type', message: 'must be string' }]);
  });

  it('refuses a schema whose $id is the meta-schema’s, and goes on checking others (the refusal used to remove the meta-schema)', () => {
    const compiler = ajvSchemaCompiler();
    for (const $id of ['https://json-schema.org/draft/2020-12/schema', 'https://json-schema.org/draft/2020-12/schema#']) {
      expect(() => compiler.compile({ $id, type: 'object' } as unknown as SchemaDocument)).toThrow(/meta-schema/);
    }
    const check = compiler.compile({ type: 'object', required: ['total'] } as unknown as SchemaDocument);
    expect(check({ total: 1 })).toEqual([]);
    expect(check({})).not.toEqual([]);
  });

  it('keeps no $id of a nested subschema: a later schema with that $id at its root compiles (it was refused as a meta-schema)', () => {
    const compiler = ajvSchemaCompiler();
    const $id = 'https://example.com/x2.json';
    const nested = { type: 'object', properties: { a: { $id, type: 'string' } } } as unknown as SchemaDocument;
    const root = { $id, type: 'object', required: ['b'] } as unknown as SchemaDocument;
    expect(compiler.compile(nested, 'nestX@1')({ a: 1 })).toMatchObject([{ path: 'payload.a', rule: 'type' }]);
    expect(compiler.compile(root, 'rootX@1')({})).toMatchObject([{ path: 'payload.b', rule: 'required' }]);
    expect(() => compiler.compile(root)).not.toThrow();
    // The other way round: a root $id left behind made the nested one "resolve to more than one schema".
    expect(() =>
      compiler.compile({ type: 'object', properties: { a: { $id, type: 'number' } } } as unknown as SchemaDocument),
    ).not.toThrow();
  });

  it('keeps no schema it compiled: a new version with the same $id compiles, and each version checks by its own rules', () => {
    const compiler = ajvSchemaCompiler();
    const version = (required: string) =>
      ({ $id: 'https://example.com/order.json', type: 'object', required: [required] }) as unknown as SchemaDocument;
    const first = compiler.compile(version('total'), 'order@1');
    const second = compiler.compile(version('currency'), 'order@2');
    expect(first({ total: 1 })).toEqual([]);
    expect(second({ total: 1 }).map((v) => v.path)).toEqual(['payload.currency']);
    // Compiled again at save time (no cache key) as often as it is saved.
    for (let i = 0; i < 3; i++) compiler.compile(version('total'));
  });

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

  it('refuses a $schema of another draft, or not a URI, with an invalid-schema error naming draft 2020-12 (ajv threw)', () => {
    for (const uri of ['http://json-schema.org/draft-04/schema#', 'https://json-schema.org/draft/2019-09/schema', 'bogus', 5, null]) {
      let refused: unknown;
      try {
        compile({ $schema: uri, type: 'object' });
      } catch (error) {
        refused = error;
      }
      expect(refused, String(uri)).toBeInstanceOf(ValidationError);
      expect((refused as ValidationError).code).toBe('validation.invalid-schema');
      expect((refused as ValidationError).message).toContain('only JSON Schema draft 2020-12');
      expect((refused as ValidationError).violations).toMatchObject([{ path: 'schema.$schema' }]);
    }
  });

  it('accepts draft 2020-12 named by $schema, with or without the empty fragment, or no $schema', () => {
    for (const $schema of ['https://json-schema.org/draft/2020-12/schema', 'https://json-schema.org/draft/2020-12/schema#', undefined]) {
      expect(compile({ $schema, type: 'object', required: ['a'] })({})).toMatchObject([{ rule: 'required' }]);
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

  it('follows a $ref whose pointer escapes a slash as %2F (or ~1) as ajv does, so the same doubling is refused', () => {
    for (const slash of ['%2F', '~1', '%7E1']) {
      const $defs: Record<string, object> = { 'd/0': { type: 'string' } };
      for (let i = 1; i <= 30; i++)
        $defs[`d/${i}`] = { anyOf: [{ $ref: `#/$defs/d${slash}${i - 1}` }, { $ref: `#/$defs/d${slash}${i - 1}` }] };
      expect(refused({ $defs, $ref: `#/$defs/d${slash}30` }), slash).toMatch(/too costly/);
    }
  });

  it('refuses a $ref back to a schema applied to the same value, which never ends', () => {
    expect(refused({ anyOf: [{ $ref: '#' }, { type: 'string' }] })).toMatch(/never end/);
    expect(refused({ $defs: { a: { allOf: [{ $ref: '#/$defs/b' }] }, b: { not: { $ref: '#/$defs/a' } } }, $ref: '#/$defs/a' })).toMatch(
      /never end/,
    );
    expect(refused({ $id: 'https://example.com/s', if: { $ref: 'https://example.com/s' } })).toMatch(/never end/);
  });

  it('refuses references ajv sends back to the root that the cost analysis reads as going nowhere', () => {
    // Each was saved with 200, then parked every item of its type with a stack overflow.
    for (const schema of [{ $recursiveRef: '#' }, { type: 'object', $dynamicRef: '#missing' }, { anyOf: [{ $ref: '#/' }] }]) {
      expect(refused(schema), JSON.stringify(schema)).toMatch(/without end/);
    }
  });

  it('judges invalid, with the reason, an item on which the schema never ends, rather than throwing', () => {
    // Ends on the simplest values (so it is saved), but not on an object with `a`.
    const check = compile({ if: { type: 'object', required: ['a'] }, then: { $ref: '#/' } });
    expect(check({ b: 1 })).toEqual([]);
    expect(check({ a: 1 })).toEqual([
      expect.objectContaining({ path: 'schema', rule: 'schema-refused', message: expect.stringMatching(/without end/) }),
    ]);
  });

  it('refuses an unknown format when the schema is saved (the check was skipped for every item), and uses a stored one as before', () => {
    expect(refused({ type: 'string', format: 'emial' })).toMatch(/unknown format "emial": formats are .*email/);
    const stored = ajvSchemaCompiler().compile({ type: 'string', format: 'emial' } as unknown as SchemaDocument, 'v1');
    expect(stored('anything')).toEqual([]);
    expect(compile({ type: 'string', format: 'email' })('not an address')).not.toEqual([]);
  });

  it('refuses unknown keywords when a schema is registered, naming them (a misspelt `required` let every item through)', () => {
    const schema = { type: 'object', requird: ['x'], properties: { a: { tpye: 'string' }, b: { properties: { c: { minimun: 1 } } } } };
    expect(refused(schema)).toMatch(/unknown keywords "requird", "tpye", "minimun"/);
    // Annotations, standard or `x-` prefixed, are welcome.
    const annotated = {
      title: 'Order',
      description: 'd',
      $comment: 'c',
      examples: [{}],
      default: {},
      deprecated: false,
      readOnly: false,
      writeOnly: false,
      'x-owner': 'team-a',
      properties: { a: { 'x-note': 1, description: 'e', $anchor: 'a', type: 'string' } },
    };
    expect(compile(annotated)({ a: 1 })).toMatchObject([{ path: 'payload.a', rule: 'type' }]);
    // A version stored before the rule keeps checking as it did.
    const stored = ajvSchemaCompiler().compile(schema as unknown as SchemaDocument, 'ev1@1');
    expect(stored({ a: 1 })).toEqual([]);
  });

  it('accepts the boolean schemas true and false', () => {
    expect(compile(true)({ any: 'thing' })).toEqual([]);
    expect(compile(false)({})).not.toEqual([]);
  });

  it('refuses subschemas that apply to the same member twice at every level of a payload', () => {
    // 2^depth checks of {"a": {"a": ...}}: each level doubles the schemas applied to the next.
    expect(refused({ allOf: [{ properties: { a: { $ref: '#' } } }, { properties: { a: { $ref: '#' } } }] })).toMatch(/too costly/);
    expect(refused({ patternProperties: { '^a': { $ref: '#' }, a$: { $ref: '#' } } })).toMatch(/too costly/);
  });

  it('counts a pattern by the size of its program: many long patterns on one value are refused', () => {
    const long = { type: 'string', pattern: '\\pL{998}' };
    // Accepted, but each character of a string costs every pattern up to 1000 steps: 998 letters are too costly to check.
    expect(compile({ allOf: Array.from({ length: 5 }, () => long) })('x'.repeat(998))).toMatchObject([{ path: 'payload', rule: 'cost' }]);
    expect(compile(long)('x')).toMatchObject([{ rule: 'pattern' }]);
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

describe('a definition many $refs point at', () => {
  const manyRefs = (properties: number, keys: number) => ({
    type: 'object',
    $defs: {
      D: {
        type: 'object',
        properties: Object.fromEntries(Array.from({ length: keys }, (_, i) => [`k${i}`, { type: 'integer', minimum: 0 }])),
      },
    },
    properties: Object.fromEntries(Array.from({ length: properties }, (_, i) => [`p${i}`, { $ref: '#/$defs/D' }])),
  });

  it('is compiled once, not copied into each place that refers to it (6.5 KB held the thread 5 s; 24 KB, 78 s and 4 GB)', () => {
    // Copied, 100 $refs to 100 keys were 7 MB of code, past the bound; 400 to 300 keys were refused as endless.
    for (const [properties, keys] of [
      [100, 100],
      [400, 300],
    ] as const) {
      const check = compile(manyRefs(properties, keys));
      expect(check({ p7: { k3: -1 } })).toMatchObject([{ path: 'payload.p7.k3', rule: 'minimum' }]);
      expect(check({ p7: { k3: 1 } })).toEqual([]);
    }
  });

  it('refuses a schema whose compiled code would pass the bound, saying so', () => {
    const compiler = ajvSchemaCompiler({ maxCodeCharacters: 20_000 });
    expect(() => compiler.compile(manyRefs(100, 100) as unknown as SchemaDocument)).toThrow(/more than 20,000 characters of code/);
    expect(compiler.compile({ type: 'object', properties: { a: { type: 'string' } } })({ a: 1 })).toHaveLength(1);
  });

  it('calls a stack overflow endless only when a check calls itself over and over', () => {
    const overflow = (run: () => unknown): unknown => {
      try {
        run();
      } catch (error) {
        return error;
      }
      throw new Error('no overflow');
    };
    const recurse = (depth: number): number => recurse(depth + 1) + 1;
    expect(isEndlessRecursion(overflow(() => recurse(0)))).toBe(true);
    // One function too large for the stack (a definition copied into it 120,000 times) overflows at its first call.
    const locals = Array.from({ length: 150_000 }, (_, i) => `let v${i} = arguments.length + ${i};`).join('');
    const huge = new Function(`${locals} return v0;`) as () => number;
    expect(isEndlessRecursion(overflow(huge))).toBe(false);
    expect(isEndlessRecursion(new RangeError('Invalid array length'))).toBe(false);
  });
});

describe('what checking one item may cost', () => {
  it('judges a string too costly for its patterns before testing it, saying where and why', () => {
    // 1 MB through a pattern RE2 may run 989 threads at once for (2967 steps a character): 12.5 s of the storage thread.
    const check = compile({ type: 'object', properties: { s: { type: 'string', pattern: 'a[ab]{985}c' } } });
    const [violation, ...others] = check({ s: 'ab'.repeat(500_000) });
    expect(others).toEqual([]);
    expect(violation).toMatchObject({ path: 'payload.s', rule: 'cost' });
    expect(violation?.message).toMatch(
      /more than the 32,010,\d+ steps .*pattern "a\[ab\]\{985\}c" \(2967 steps a character\) on a string of 1000000 characters/,
    );
    // Keys through patternProperties and propertyNames are counted the same way.
    const keys = compile({ type: 'object', propertyNames: { pattern: 'a[ab]{985}c' } });
    expect(keys({ ['ab'.repeat(500_000)]: 1 })).toMatchObject([{ rule: 'cost', path: expect.stringMatching(/^payload\.abab/) }]);
  });

  it('gives a one-pass pattern and an anchored count a few steps a character, whatever their size', () => {
    const check = compile({
      type: 'object',
      properties: { name: { type: 'string', pattern: '^[A-Za-z ]{1,100}$' }, id: { type: 'string', pattern: '^[0-9a-f]{8}-[0-9a-f]{4}$' } },
    });
    expect(check({ name: 'Ada Lovelace', id: '0123abcd-ef01' })).toEqual([]);
    expect(check({ name: 'x'.repeat(500_000) })).toMatchObject([{ rule: 'pattern' }]);
  });

  it('counts the subschemas that apply to each value before ajv runs', () => {
    // 990 subschemas on each of 250,000 numbers took 26 s; the schema is within what a value may meet.
    const check = compile({ type: 'array', items: { allOf: Array.from({ length: 990 }, (_, i) => ({ minimum: -1 - i })) } });
    expect(check([1])).toEqual([]);
    expect(check(Array.from({ length: 250_000 }, () => 1))).toMatchObject([
      { path: 'payload', rule: 'cost', message: expect.stringMatching(/the subschemas that apply to its values/) },
    ]);
  });

  it('stops at the first violation when listing them all would cost too much, and says so', () => {
    // 3000 required names over 2000 empty objects (6 KB): ajv made 6,000,000 violations in 17 s. Looking
    // for the names alone is more than the item may cost; 20 names over 300 objects may be looked for,
    // but not every one reported missing.
    const required = (count: number) => ({
      type: 'array',
      items: { type: 'object', required: Array.from({ length: count }, (_, i) => `p${i}`) },
    });
    expect(compile(required(3000))(Array.from({ length: 2000 }, () => ({})))).toMatchObject([{ rule: 'cost', path: 'payload' }]);
    const violations = compile(required(20))(Array.from({ length: 300 }, () => ({})));
    expect(violations).toHaveLength(2);
    expect(violations[0]).toMatchObject({ rule: 'required' });
    expect(violations[1]).toMatchObject({ path: 'payload', rule: 'cost', message: expect.stringMatching(/there may be more violations/) });
    // A few missing names on a few objects are all listed, as before.
    expect(compile({ type: 'array', items: { type: 'object', required: ['a', 'b'] } })([{}, { a: 1 }])).toHaveLength(3);
  });
});
