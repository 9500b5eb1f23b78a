import { describe, expect, it } from 'vitest';
import { ConflictError, ValidationError } from '../../shared/errors.js';
import {
  conversionFromCommand,
  conversionFromRecorded,
  conversionStreamId,
  decideRecordConversion,
  evolveConversion,
  noConversion,
  type RecordConversionCommand,
} from './conversion.js';

const receivedAt = new Date('2026-11-24T10:00:00.000Z');

function violationsOf(command: RecordConversionCommand): string[] {
  try {
    conversionFromCommand(command, 'conv-1', receivedAt);
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).code).toBe('attribution.invalid-conversion');
    return (error as ValidationError).violations.map((v) => `${v.path}: ${v.message}`);
  }
  return [];
}

describe('Conversion', () => {
  it('given no conversion, recording it records ConversionRecorded', () => {
    const conversion = conversionFromCommand({ visitorId: 'v-1', value: 49.99, occurredAt: '2026-11-24T09:30:00Z' }, 'conv-1', receivedAt);
    const events = decideRecordConversion(conversion, noConversion);
    expect(events).toEqual([
      {
        type: 'ConversionRecorded',
        data: {
          conversion_id: 'conv-1',
          visitor_id: 'v-1',
          value: 49.99,
          occurred_at: '2026-11-24T09:30:00.000Z',
          recorded_at: '2026-11-24T10:00:00.000Z',
        },
      },
    ]);
    expect(conversionStreamId('conv-1')).toBe('conversion-conv-1');
    expect(conversionFromRecorded(events[0]?.data)).toEqual(conversion);
    // The tracking API's conversions are of the tracking API's visitors, never of an application's users.
    expect(conversion.visitor).toEqual({ appId: null, id: 'v-1' });
  });

  it('refuses a visitor id with a C1 control character, and reads one back from a conversion recorded before', () => {
    expect(violationsOf({ visitorId: 'v\u009b31m', value: 1 })).toEqual(['visitor_id: must not contain control characters']);
    const recorded = {
      conversion_id: 'c-1',
      visitor_id: 'v\u0085',
      value: 1,
      occurred_at: '2026-11-24T09:00:00.000Z',
      recorded_at: '2026-11-24T09:00:01.000Z',
    };
    expect(conversionFromRecorded(recorded).visitor).toEqual({ appId: null, id: 'v\u0085' });
  });

  it('given a recorded conversion, recording it again is a conflict', () => {
    const conversion = conversionFromCommand({ visitorId: 'v-1', value: 0 }, 'conv-1', receivedAt);
    const state = decideRecordConversion(conversion, noConversion).reduce(evolveConversion, noConversion);
    expect(state.status).toBe('recorded');
    expect(() => decideRecordConversion(conversion, state)).toThrow(ConflictError);
  });

  it('happens when it was received unless the client says otherwise', () => {
    expect(conversionFromCommand({ visitorId: 'v-1', value: 1 }, 'conv-1', receivedAt).occurredAt).toBe('2026-11-24T10:00:00.000Z');
  });

  it('lists every invalid field at once', () => {
    expect(violationsOf({ visitorId: 'v'.repeat(256), value: '10', occurredAt: '2026-13-01T00:00:00Z' })).toEqual([
      'visitor_id: must be at most 255 characters',
      'value: must be a number',
      'occurred_at: must be an RFC 3339 date-time such as 2026-11-24T10:00:00Z',
    ]);
    expect(violationsOf({ visitorId: undefined, value: undefined })).toEqual(['visitor_id: is required', 'value: is required']);
  });

  it.each([
    ['a negative value', { visitorId: 'v', value: -5 }, 'value: must not be negative'],
    ['an absurd value', { visitorId: 'v', value: 1e13 }, 'value: must be at most 1000000000000'],
    ['a future conversion', { visitorId: 'v', value: 1, occurredAt: '2026-11-25T10:00:00Z' }, 'occurred_at: must not be in the future'],
  ])('refuses %s', (_name, command, violation) => {
    expect(violationsOf(command)).toEqual([violation]);
  });

  it('refuses to read back a recorded conversion of the wrong shape', () => {
    expect(() => conversionFromRecorded({ conversion_id: 'c', visitor_id: 'v' })).toThrow(/value is required/);
  });
});
