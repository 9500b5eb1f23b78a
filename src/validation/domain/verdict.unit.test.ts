import { describe, expect, it } from 'vitest';
import type { ItemSnapshot } from '../../shared/contracts/data-events.js';
import { decideRegister, decideRemove, evolveSchema, noSchema } from './schema-registry.js';
import { decideVerdict } from './verdict.js';

const at = new Date('2026-11-24T12:00:00.000Z');
const item: ItemSnapshot = {
  item_id: 'i-1',
  partner_id: 'p',
  event_type: 'order',
  payload: { total: 5 },
  received_at: at.toISOString(),
  metadata: { channel: 'partner_api', received_at: at.toISOString(), ip: null, user_agent: null, correlation_id: null, key_id: null },
};

describe('validation verdict', () => {
  it('is valid with no schema', () => {
    expect(decideVerdict(item, undefined, at)).toMatchObject({
      type: 'DataValidated',
      data: { schema_version: null, schema_partner_id: null, payload: { total: 5 } },
    });
  });

  it('says which schema judged: a source’s own, or (null) the one for every source, whose versions are numbered apart', () => {
    const own = { version: 2, partnerId: 'p', check: () => [] };
    expect(decideVerdict(item, own, at).data).toMatchObject({ schema_version: 2, schema_partner_id: 'p' });
    const everySource = { version: 2, partnerId: null, check: () => [{ path: 'payload', rule: 'type', message: 'must be array' }] };
    expect(decideVerdict(item, everySource, at)).toMatchObject({
      type: 'DataInvalid',
      data: { schema_version: 2, schema_partner_id: null },
    });
  });

  it('is invalid with every violation of the schema', () => {
    const schema = {
      version: 3,
      partnerId: null,
      check: () => [
        { path: 'payload.total', rule: 'minimum', message: 'must be >= 10' },
        { path: 'payload.currency', rule: 'required', message: 'is required' },
      ],
    };
    const verdict = decideVerdict(item, schema, at);
    expect(verdict.type).toBe('DataInvalid');
    expect(verdict.data).toMatchObject({ schema_version: 3, errors: [{ rule: 'minimum' }, { rule: 'required' }] });
  });
});

describe('schema registry', () => {
  const key = { eventType: 'order', partnerId: null };

  it('numbers versions from 1 and removes only an active schema', () => {
    const first = decideRegister(key, { type: 'object' }, noSchema, at);
    expect(first.data.version).toBe(1);
    const state = evolveSchema(noSchema, first);
    expect(decideRegister(key, true, state, at).data.version).toBe(2);
    const removed = decideRemove(key, state, at);
    expect(() => decideRemove(key, evolveSchema(state, removed), at)).toThrow(/no schema/);
  });

  it('refuses a schema that is neither an object nor a boolean', () => {
    expect(() => decideRegister(key, [1], noSchema, at)).toThrow(/JSON Schema/);
    expect(() => decideRegister(key, 'string', noSchema, at)).toThrow(/JSON Schema/);
  });
});
