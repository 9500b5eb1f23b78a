import { afterEach, describe, expect, it } from 'vitest';
import { ValidationError } from '../../../shared/errors.js';
import type { SchemaDocument } from '../../domain/schema-registry.js';
import { threadedSchemaCheck } from './threaded-schema-check.js';

/** About 60 KB of schema: a few hundred milliseconds of compiling on a quiet machine. */
const large = {
  type: 'object',
  properties: Object.fromEntries(Array.from({ length: 1300 }, (_, i) => [`property_${i}`, { type: 'string', maxLength: 100 }])),
} as unknown as SchemaDocument;

/** The most `allOf` branches the cost analysis lets through: most of a second of compiling on a quiet machine. */
const slow = {
  allOf: Array.from({ length: 999 }, (_, i) => ({ properties: { [`p${i}`]: { type: 'string' } } })),
} as unknown as SchemaDocument;

describe('schemas being saved are compiled on a thread of their own', () => {
  const opened: Array<{ close(): Promise<void> }> = [];
  const checker = (options?: { deadlineMs: number }) => {
    const check = threadedSchemaCheck(options);
    opened.push(check);
    return check;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((check) => check.close()));
  });

  it('accepts a schema that compiles and refuses one that does not, with what is wrong', async () => {
    const check = checker();
    await expect(check({ type: 'object', required: ['id'] } as unknown as SchemaDocument)).resolves.toBeUndefined();
    const refused = await check({ type: 'object', requird: ['id'] } as unknown as SchemaDocument).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ValidationError);
    expect(refused).toMatchObject({ code: 'validation.invalid-schema', violations: [{ path: 'schema' }] });
    expect((refused as Error).message).toMatch(/requird/);
  });

  it('keeps this thread serving while a large schema compiles (the HTTP thread compiled it, and answered nothing meanwhile)', async () => {
    const check = checker();
    await check(true as SchemaDocument); // the thread's start is not what is measured
    let ticks = 0;
    const ticking = setInterval(() => (ticks += 1), 5);
    try {
      await check(large);
    } finally {
      clearInterval(ticking);
    }
    expect(ticks).toBeGreaterThan(3);
  });

  it('refuses a schema that takes longer than the deadline, stops that compile, and checks the next on a new thread', async () => {
    const check = checker({ deadlineMs: 20 });
    await check(true as SchemaDocument);
    await expect(check(large)).rejects.toMatchObject({ code: 'validation.invalid-schema', message: /took more than 0.02 s/ });
    const next = checker();
    await expect(next({ type: 'string' } as unknown as SchemaDocument)).resolves.toBeUndefined();
    // The same checker starts a new thread for its next schema.
    await expect(check(true as SchemaDocument)).resolves.toBeUndefined();
  });

  it('checks the schema after one past its deadline on a new thread, and only the late one is refused (the next got a 500, and the one after timed out)', async () => {
    const check = checker({ deadlineMs: 150 });
    await check(true as SchemaDocument);
    const outcomes = await Promise.allSettled([check(slow), check({ type: 'string' } as unknown as SchemaDocument), check(slow)]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['rejected', 'fulfilled', 'rejected']);
    expect(outcomes[2]).toMatchObject({ reason: { code: 'validation.invalid-schema', message: /took more than/ } });
    await expect(check({ type: 'integer' } as unknown as SchemaDocument)).resolves.toBeUndefined();
  });

  it('checks schemas sent at once one after the other, each answered with its own verdict', async () => {
    const check = checker();
    const outcomes = await Promise.allSettled([
      check({ type: 'string' } as unknown as SchemaDocument),
      check({ type: 'strin' } as unknown as SchemaDocument),
      check({ type: 'integer', minimum: 1 } as unknown as SchemaDocument),
    ]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  });
});
