import { describe, expect, it } from 'vitest';
import { DATA_TEXT, extendedEvent, serialize, serializedEvent } from './serialized-event.js';

const readFrom = (data: object, text = JSON.stringify(data)) => ({ data, [DATA_TEXT]: text });

describe('extendedEvent', () => {
  const item = { item_id: 'i-1', payload: { total: 55, note: 'a "quoted" é \u2028' }, tags: [1, 2] };

  it("writes the source's text with the additions after its fields, as JSON.stringify of the spread would", () => {
    const additions = { schema_version: null, validated_at: '2026-12-03T10:00:00.000Z' };
    const event = extendedEvent(readFrom(item), { type: 'DataValidated', data: { ...item, ...additions } }, additions);
    expect(serialize(event).data).toBe(JSON.stringify({ ...item, ...additions }));
  });

  it('keeps the text as the source was written, not as it would be stringified now', () => {
    // A text written with other spacing still parses to the same data: it is the source's own text that is kept.
    const text = '{ "item_id": "i-1" }';
    const event = extendedEvent(readFrom({ item_id: 'i-1' }, text), { type: 'B', data: { item_id: 'i-1', at: 1 } }, { at: 1 });
    expect(serialize(event).data).toBe('{ "item_id": "i-1" ,"at":1}');
    expect(JSON.parse(serialize(event).data)).toEqual({ item_id: 'i-1', at: 1 });
  });

  it('stringifies the data when the source has no text, when an addition replaces a field, or when the source is empty', () => {
    const data = { ...item, tags: ['changed'] };
    const cases = [
      extendedEvent({ data: item }, { type: 'B', data: { ...item, at: 1 } }, { at: 1 }),
      extendedEvent(readFrom(item), { type: 'B', data }, { tags: ['changed'] }),
      extendedEvent(readFrom({}, '{ }'), { type: 'B', data: { at: 1 } }, { at: 1 }),
    ];
    expect(cases.map((event) => serialize(event).data)).toEqual([
      JSON.stringify({ ...item, at: 1 }),
      JSON.stringify(data),
      JSON.stringify({ at: 1 }),
    ]);
  });

  it('leaves metadata to be stringified, and an event serialised by its sender as it came', () => {
    const event = extendedEvent(readFrom(item), { type: 'B', data: { ...item, at: 1 }, metadata: { causationId: 'c' } }, { at: 1 });
    // With the version of its data's shape, 1 when its writer named none.
    expect(serialize(event).metadata).toBe('{"schema_version":1,"causationId":"c"}');
    expect(serialize(serializedEvent('C', '{"x":1}', '{}'))).toEqual({ data: '{"x":1}', metadata: '{}' });
  });
});
