import { describe, expect, it } from 'vitest';
import { ConflictError, ValidationError } from '../../shared/errors.js';
import { decideIngest, evolve, initialState, itemFromCommand, type IngestDataCommand } from './ingested-data.js';
import { parseEventType } from './values.js';

const at = new Date('2026-11-24T10:00:00.000Z');
const command = (overrides: Partial<IngestDataCommand> = {}): IngestDataCommand => ({
  partnerId: 'partner123',
  payload: { order: 1 },
  channel: 'partner_api',
  ...overrides,
});

describe('IngestedData', () => {
  it('given no item, ingesting records DataReceived then DataIngested with the full item', () => {
    const item = itemFromCommand(command({ request: { ip: '10.0.0.1', correlationId: 'c-1' } }), 'id-1', at);
    const events = decideIngest(item, initialState);
    expect(events.map((e) => e.type)).toEqual(['DataReceived', 'DataIngested']);
    expect(events[1]?.data).toEqual({
      item_id: 'id-1',
      partner_id: 'partner123',
      event_type: 'data',
      payload: { order: 1 },
      received_at: '2026-11-24T10:00:00.000Z',
      metadata: {
        channel: 'partner_api',
        received_at: '2026-11-24T10:00:00.000Z',
        ip: '10.0.0.1',
        user_agent: null,
        correlation_id: 'c-1',
        key_id: null,
      },
    });
  });

  it('stamps the item with the arrival time its caller gives, else with now', () => {
    const arrived = new Date('2026-11-24T09:59:59.998Z');
    expect(itemFromCommand(command({ receivedAt: arrived }), 'id-1', at)).toMatchObject({
      receivedAt: '2026-11-24T09:59:59.998Z',
      metadata: { received_at: '2026-11-24T09:59:59.998Z' },
    });
    expect(itemFromCommand(command(), 'id-1', at).receivedAt).toBe('2026-11-24T10:00:00.000Z');
  });

  it('given an ingested item, ingesting it again is a conflict', () => {
    const item = itemFromCommand(command(), 'id-1', at);
    const state = decideIngest(item, initialState).reduce(evolve, initialState);
    expect(state.status).toBe('ingested');
    expect(() => decideIngest(item, state)).toThrow(ConflictError);
  });

  it.each([
    ['a missing partner id', { partnerId: undefined }, 'partner_id'],
    ['a numeric-looking object partner id', { partnerId: { id: 1 } }, 'partner_id'],
    ['an empty partner id', { partnerId: '  ' }, 'partner_id'],
    ['an overlong partner id', { partnerId: 'p'.repeat(256) }, 'partner_id'],
    ['an array payload', { payload: [1, 2] }, 'payload'],
    ['a null payload', { payload: null }, 'payload'],
    ['a string payload', { payload: 'text' }, 'payload'],
    ['an event type with a leading space', { eventType: ' order' }, 'event_type'],
    ['an event type with a trailing space', { eventType: 'order ' }, 'event_type'],
  ])('rejects %s naming the field', (_name, overrides, path) => {
    try {
      itemFromCommand(command(overrides), 'id-1', at);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).violations[0]?.path).toBe(path);
    }
  });

  it('accepts an integer partner id as the same source as its string form', () => {
    expect(itemFromCommand(command({ partnerId: 42 }), 'id-1', at).partnerId).toBe('42');
  });
});

describe('event types of analytics SDKs', () => {
  it('may have inner spaces, as in "Order Completed"', () => {
    expect(parseEventType('Order Completed')).toBe('Order Completed');
  });

  it('are named as SDK users name them: punctuation, any script, symbols', () => {
    for (const name of ['Product Added (v2)', 'Signed Up!', 'Café Visited', '$pageview', 'Ω', 'Order #7 & co.', 'x'.repeat(128), '🎉'])
      expect(parseEventType(name)).toBe(name);
  });

  it('refuse what cannot be shown as written: controls, line separators, direction marks, spaces at an end, over 128', () => {
    for (const name of [
      '',
      ' leading',
      'trailing ',
      'tab\there',
      'line\u2028separated',
      'right\u202eto left',
      'nul\u0000',
      'x'.repeat(129),
    ])
      expect(() => parseEventType(name), JSON.stringify(name)).toThrow(/must be 1-128 characters, without control/);
  });
});
