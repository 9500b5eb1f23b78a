import { describe, expect, it } from 'vitest';
import type { ItemSnapshot } from '../../shared/contracts/data-events.js';
import { ValidationError } from '../../shared/errors.js';
import { buildPipeline, runPipeline } from './pipeline.js';
import { failed, type Processor } from './processor.js';
import { normalize } from './processors/normalize.js';
import { project } from './processors/project.js';

const at = new Date('2026-11-24T12:00:00.000Z');
const item = (payload: ItemSnapshot['payload']): ItemSnapshot => ({
  item_id: 'i-1',
  partner_id: 'p',
  event_type: 'order',
  payload,
  received_at: at.toISOString(),
  metadata: { channel: 'partner_api', received_at: at.toISOString(), ip: null, user_agent: null, correlation_id: null, key_id: null },
});
const clock = () => 0;
const facts = { itemId: 'i', partnerId: 'p', eventType: 't' };

describe('normalize', () => {
  it('trims strings, canonicalises date-times to UTC ISO and lower-cases e-mails, at any depth', () => {
    const outcome = normalize.run(
      {
        name: '  Ada  ',
        email: ' Ada.Lovelace@Example.COM ',
        placed: '2026-11-24 10:30',
        shipped: '2026-11-24T12:30:00+0200',
        nested: { at: '2026-11-24T10:30:15.5Z', tags: [' a ', 'B@X.IO'] },
        count: 3,
        flag: null,
      },
      facts,
    );
    expect(outcome).toEqual({
      status: 'ok',
      output: {
        name: 'Ada',
        email: 'ada.lovelace@example.com',
        placed: '2026-11-24T10:30:00.000Z',
        shipped: '2026-11-24T10:30:00.000Z',
        nested: { at: '2026-11-24T10:30:15.500Z', tags: ['a', 'b@x.io'] },
        count: 3,
        flag: null,
      },
    });
  });

  it('leaves strings that only look like dates alone', () => {
    expect(normalize.run({ code: '2026-13-45 99:99' }, facts)).toEqual({ status: 'ok', output: { code: '2026-13-45 99:99' } });
    // Days that do not exist: Date rolled them over into other, real days.
    const impossible = { a: '2026-02-30T10:00:00Z', b: '2026-04-31 12:00', c: '2026-02-29 00:00', d: '2026-00-10 10:00' };
    expect(normalize.run(impossible, facts)).toEqual({ status: 'ok', output: impossible });
    expect(normalize.run({ leap: '2028-02-29 00:00' }, facts)).toEqual({ status: 'ok', output: { leap: '2028-02-29T00:00:00.000Z' } });
    // In UTC they fall outside four-digit years: kept as sent rather than written +010000-… or -000001-…
    const edges = { last: '9999-12-31T23:00:00-02:00', first: '0000-01-01 00:30+01:00', inside: '9999-12-31T23:00:00+02:00' };
    expect(normalize.run(edges, facts)).toEqual({ status: 'ok', output: { ...edges, inside: '9999-12-31T21:00:00.000Z' } });
  });

  it('keeps the digits of a date-time past the millisecond', () => {
    const given = {
      micro: '2026-11-24T10:00:00.123456Z',
      nano: '2026-11-24 10:00:00.123456789+02:00',
      milli: '2026-11-24T10:00:00.1+01:00',
    };
    expect(normalize.run(given, facts)).toEqual({
      status: 'ok',
      output: { micro: '2026-11-24T10:00:00.123456Z', nano: '2026-11-24T08:00:00.123456789Z', milli: '2026-11-24T09:00:00.100Z' },
    });
  });

  it('lower-cases only what is shaped like an e-mail address', () => {
    const cases: Array<[string, string]> = [
      ['A@B.CO', 'a@b.co'],
      ['Ann@Mail.Example.ORG', 'ann@mail.example.org'],
      ['X@.B.C', 'x@.b.c'],
      ['No@Dot', 'No@Dot'],
      ['@B.CO', '@B.CO'],
      ['A@B.', 'A@B.'],
      ['A@@B.CO', 'A@@B.CO'],
      ['A B@C.DE', 'A B@C.DE'],
      [`${'A'.repeat(250)}@B.CO`, `${'A'.repeat(250)}@B.CO`],
      ["O'Brien+News@Éxample.COM", "o'brien+news@éxample.com"],
      // Case matters in what only holds an @: a URL's path and user info, a token, a mailto: link.
      ['https://Alice@Example.com/Reset/AbCdEf', 'https://Alice@Example.com/Reset/AbCdEf'],
      ['Ann@Corp.Example.COM:Secret', 'Ann@Corp.Example.COM:Secret'],
      ['mailto:Ann@Example.COM', 'mailto:Ann@Example.COM'],
      ['Ann@Example.com?Ref=AB', 'Ann@Example.com?Ref=AB'],
    ];
    for (const [given, expected] of cases) expect(normalize.run({ v: given }, facts)).toEqual({ status: 'ok', output: { v: expected } });
  });

  it('answers a date-time it saw before as it did the first time, also past the ones it remembers', () => {
    const minutes = Array.from(
      { length: 1500 },
      (_, i) => `${String(Math.floor(i / 60) % 24).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}`,
    );
    const days = ['2026-01-05', '2026-02-28', '2028-02-29'];
    const sent = days.flatMap((day) => minutes.map((time) => ({ spaced: ` ${day} ${time} `, zoned: `${day}T${time}:00+01:00` })));
    const expected = (day: string, time: string, hoursEast: number) =>
      new Date(Date.parse(`${day}T${time}:00.000Z`) - hoursEast * 3_600_000).toISOString();
    for (let round = 0; round < 2; round++) {
      for (const [i, { spaced, zoned }] of sent.entries()) {
        const day = days[Math.floor(i / minutes.length)] ?? '';
        const time = minutes[i % minutes.length] ?? '';
        expect(normalize.run({ spaced, zoned, impossible: `2026-02-30 ${time}` }, facts)).toEqual({
          status: 'ok',
          output: { spaced: expected(day, time, 0), zoned: expected(day, time, 1), impossible: `2026-02-30 ${time}` },
        });
      }
    }
  });

  it('looks at a long string of dots after an @ in one pass', () => {
    // The earlier pattern backtracked over every dot, in time growing with the square of their number:
    // 13 s for 150,000 of them, holding up every write; this many would outlast the test's timeout.
    const dots = `a@${'.'.repeat(1_000_000)}@`;
    expect(normalize.run({ note: dots }, facts)).toEqual({ status: 'ok', output: { note: dots } });
  });
});

describe('project', () => {
  it('copies only what it changes, so a pipeline of many normalize steps reads the payload after the first', () => {
    // Copying every object made each step cost ~100 ms on a payload of 100,000 keys, and a pipeline has up to 20.
    const input = { a: 1, list: [1, 'x', { b: true }], nested: { c: 'ok' }, email: 'A@B.IO' };
    const once = normalize.run(input, facts) as { status: 'ok'; output: typeof input };
    expect(once.output).not.toBe(input);
    expect(once.output).toEqual({ ...input, email: 'a@b.io' });
    // Unchanged parts are shared, not copied.
    expect(once.output.list).toBe(input.list);
    expect(once.output.nested).toBe(input.nested);
    expect(input.email).toBe('A@B.IO');
    expect((normalize.run(once.output, facts) as { output: unknown }).output).toBe(once.output);
    // A key named __proto__ stays a key when its value changes.
    const proto = JSON.parse('{"__proto__":" x ","y":1}') as Record<string, never>;
    const output = (normalize.run(proto, facts) as { output: Record<string, unknown> }).output;
    expect(Object.getPrototypeOf(output)).toBe(Object.prototype);
    expect(JSON.stringify(output)).toBe('{"__proto__":"x","y":1}');
  });

  it('keeps only the listed paths', () => {
    expect(
      project(['id', 'customer.email', 'missing.field']).run({ id: 1, secret: 'x', customer: { email: 'a@b.c', phone: '1' } }, facts),
    ).toEqual({
      status: 'ok',
      output: { id: 1, customer: { email: 'a@b.c' } },
    });
  });

  it('copies a field named __proto__ as data, never into a prototype', () => {
    const input = JSON.parse('{"__proto__":{"polluted":1},"a":{"__proto__":{"x":2}}}') as Record<string, never>;
    const outcome = project(['__proto__.polluted', 'a.__proto__']).run(input, facts);
    expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined();
    expect(outcome.status).toBe('ok');
    const output = (outcome as { output: Record<string, unknown> }).output;
    expect(Object.getPrototypeOf(output)).toBe(Object.prototype);
    expect(JSON.stringify(output)).toBe('{"__proto__":{"polluted":1},"a":{"__proto__":{"x":2}}}');
  });

  it('is refused at save time with a path through a prototype', () => {
    for (const field of ['__proto__.pwned', 'a.constructor', 'prototype']) {
      expect(() => buildPipeline([{ processor: 'project', fields: [field] }])).toThrow(ValidationError);
    }
    expect(buildPipeline([{ processor: 'project', fields: ['constructors.name'] }])).toHaveLength(1);
  });

  it('lists at most 100 fields of at most 256 characters', () => {
    // Each is read from every item, once per step: 100,000 fields in 20 steps took 1.2 s per item.
    const fields = (count: number) => Array.from({ length: count }, (_, i) => `f${i}`);
    expect(buildPipeline([{ processor: 'project', fields: fields(100) }])).toHaveLength(1);
    expect(() => buildPipeline([{ processor: 'project', fields: fields(101) }])).toThrow(/at most 100 field paths/);
    expect(() => buildPipeline([{ processor: 'project', fields: ['a'.repeat(257)] }])).toThrow(ValidationError);
  });
});

describe('runPipeline', () => {
  it('feeds each step the previous output and records every step', () => {
    const event = runPipeline(
      item({ email: ' X@Y.ZZ ', drop: 1 }),
      buildPipeline([{ processor: 'normalize' }, { processor: 'project', fields: ['email'] }]),
      clock,
      at,
    );
    expect(event).toEqual({
      type: 'DataProcessed',
      data: {
        item_id: 'i-1',
        partner_id: 'p',
        event_type: 'order',
        result: { email: 'x@y.zz' },
        steps: [
          { name: 'normalize', status: 'ok', duration_ms: 0 },
          { name: 'project', status: 'ok', duration_ms: 0 },
        ],
        processed_at: at.toISOString(),
      },
    });
  });

  it('fails the item with the reason of a step that throws, and skips the rest', () => {
    const exploding: Processor = {
      name: 'explode',
      run: () => {
        throw new Error('boom');
      },
    };
    const event = runPipeline(item({}), [normalize, exploding, normalize], clock, at);
    expect(event.type).toBe('DataProcessingFailed');
    expect(event.data).toMatchObject({
      reason: 'explode threw: boom',
      failed_step: 'explode',
      steps: [{ status: 'ok' }, { name: 'explode', status: 'failed', error: 'explode threw: boom' }, { status: 'skipped' }],
    });
  });

  it('fails the item when a step answers a failure outcome', () => {
    const refusing: Processor = { name: 'refuse', run: () => failed('no thanks') };
    expect(runPipeline(item({}), [refusing], clock, at)).toMatchObject({ type: 'DataProcessingFailed', data: { reason: 'no thanks' } });
  });

  it.each([
    [[], 'steps'],
    [[{ processor: 'nope' }], 'steps.0.processor'],
    [[{ processor: 'project' }], 'steps.0.fields'],
    [[{ processor: 'project', fields: ['a..b'] }], 'steps.0.fields'],
  ])('refuses the configuration %j', (config, path) => {
    try {
      buildPipeline(config);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).violations[0]?.path).toBe(path);
    }
  });
});
