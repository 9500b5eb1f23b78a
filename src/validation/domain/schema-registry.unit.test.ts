import { describe, expect, it } from 'vitest';
import { decideRegister, MAX_SCHEMA_BYTES, noSchema } from './schema-registry.js';

const key = { eventType: 'order', partnerId: null };
const at = new Date('2026-12-04T00:00:00.000Z');
const schemaOfBytes = (bytes: number) => {
  const shell = JSON.stringify({ description: '' }).length;
  return { description: 'x'.repeat(bytes - shell) };
};

describe('registering a schema', () => {
  it('takes a schema up to the size limit as a new version', () => {
    const schema = schemaOfBytes(MAX_SCHEMA_BYTES);
    expect(Buffer.byteLength(JSON.stringify(schema))).toBe(MAX_SCHEMA_BYTES);
    expect(decideRegister(key, schema, noSchema, at).data).toMatchObject({ version: 1, event_type: 'order' });
  });

  it('refuses a schema larger than the limit, which would hold a thread while it compiles', () => {
    expect(() => decideRegister(key, schemaOfBytes(MAX_SCHEMA_BYTES + 1), noSchema, at)).toThrow(
      expect.objectContaining({
        code: 'validation.schema-too-large',
        violations: [{ path: 'schema', message: expect.stringContaining('at most 65536') }],
      }),
    );
  });
});
