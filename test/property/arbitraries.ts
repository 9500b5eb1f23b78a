import fc from 'fast-check';

/**
 * Request bodies for the property suite, as JSON text (so hostile text that no JS value serialises
 * to can be sent too): mostly well-formed bodies of the endpoint's shape with arbitrary values,
 * plus hostile pieces spliced into them and plain junk.
 */

/** Any JSON value, strings over the whole of Unicode (well-formed), keys included. */
export const jsonValue = fc.jsonValue({ maxDepth: 4, stringUnit: 'grapheme' });
export const jsonObject = fc.dictionary(fc.string({ unit: 'grapheme', maxLength: 12 }), jsonValue, { maxKeys: 6 });

const odd = ['__proto__', 'constructor', 'prototype', '', ' ', '\u0000', '\u202e', '\u200b', '😀', 'a.b', '$where', 'toString', 'é'];

/** Hostile JSON text, to be spliced where a value goes. */
export const hostileValue: fc.Arbitrary<string> = fc.oneof(
  // Deep nesting, from just past the limit to far beyond any stack.
  fc.integer({ min: 60, max: 5000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
  fc.integer({ min: 60, max: 3000 }).map((n) => '{"a":'.repeat(n) + '0' + '}'.repeat(n)),
  // Lone surrogates, written as JSON escapes (JSON.parse turns them into lone UTF-16 units).
  fc.constantFrom('"\\ud800"', '"x\\udfff"', '"\\udc00\\ud800"', '"ok\\ud83d\\ude00"', '["\\ud83d"]', '{"\\udbff":1}'),
  // Numbers a double cannot hold, or not exactly.
  fc.constantFrom(
    '1e309',
    '-1e309',
    '1e400',
    '12345678901234567890',
    '-9007199254740993',
    '9007199254740992',
    '0.1e-400',
    '-0',
    '1.7976931348623157e308',
  ),
  // Keys that prototypes, parsers or path syntax may trip on.
  fc.constantFrom(...odd).chain((key) => jsonValue.map((value) => `{${JSON.stringify(key)}:${JSON.stringify(value)}}`)),
  fc.constant('{"constructor":{"prototype":{"polluted":true}}}'),
  fc.constant('{"__proto__":{"polluted":true}}'),
);

/** Text that is not JSON at all, or JSON of the wrong shape. */
export const junk: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 30 }),
  jsonValue.map((value) => JSON.stringify(value)),
  fc.constantFrom('', '{', '{"a":1,}', '[1,2', 'null', '"text"', '{"a":1}{"b":2}', 'NaN', '{"a":Infinity}'),
);

/** A well-formed body most of the time; hostile or junk otherwise. `holes` splices a hostile value. */
export function bodies(wellFormed: fc.Arbitrary<unknown>, holes: ReadonlyArray<(value: string) => string>): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 6, arbitrary: wellFormed.map((body) => JSON.stringify(body)) },
    { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...holes), hostileValue).map(([hole, value]) => hole(value)) },
    { weight: 1, arbitrary: junk },
  );
}

/** Present, absent, or of the wrong type. */
export const maybe = <T>(arbitrary: fc.Arbitrary<T>) =>
  fc.option(fc.oneof({ weight: 5, arbitrary }, { weight: 1, arbitrary: jsonValue }), { nil: undefined, freq: 6 });

export const id = fc.oneof(
  fc.stringMatching(/^[a-z0-9_-]{1,20}$/),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }),
  fc.integer({ min: 0, max: 10_000 }),
);
export const eventType = fc.oneof(
  { weight: 5, arbitrary: fc.stringMatching(/^[a-z][a-z0-9_.:-]{0,20}$/) },
  { weight: 1, arbitrary: fc.string() },
);
const url = fc.oneof({ weight: 8, arbitrary: fc.webUrl() }, { weight: 1, arbitrary: fc.string() });
/** Mostly valid: a tracking event is refused when any of its six fields is wrong. */
const trackingId = fc.oneof({ weight: 8, arbitrary: fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/) }, { weight: 1, arbitrary: id });

/** A record with every field most of the time, and with any of them missing otherwise. */
function record<T extends Record<string, fc.Arbitrary<unknown>>>(fields: T): fc.Arbitrary<Record<string, unknown>> {
  return fc.oneof({ weight: 6, arbitrary: fc.record(fields) }, { weight: 1, arbitrary: fc.record(fields, { requiredKeys: [] }) });
}

export const ingestBody = record({
  partner_id: id,
  event_type: maybe(eventType),
  payload: fc.oneof({ weight: 5, arbitrary: jsonObject }, { weight: 1, arbitrary: jsonValue }),
});

export const appEventBody = record({
  event_type: eventType,
  payload: fc.oneof({ weight: 5, arbitrary: jsonObject }, { weight: 1, arbitrary: jsonValue }),
  message_id: maybe(fc.uuid()),
});

export const trackingBody = record({
  partner_id: trackingId,
  campaign_id: trackingId,
  visitor_id: trackingId,
  interaction_type: fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom('click', 'view', 'engagement') },
    { weight: 1, arbitrary: fc.string() },
  ),
  source_url: url,
  destination_url: url,
  occurred_at: maybe(fc.date({ noInvalidDate: true }).map((d) => d.toISOString())),
});

const field = fc.constantFrom('payload.total', 'payload.s', 'event_type', 'metadata.ip', 'payload.a.b');
const operator = fc.constantFrom(
  '$gt',
  '$lt',
  '$gte',
  '$eq',
  '$ne',
  '$in',
  '$nin',
  '$exists',
  '$regex',
  '$not',
  '$size',
  '$where',
  '$expr',
  '$bogus',
);
const validCondition = fc.oneof(
  fc
    .tuple(field, fc.constantFrom('$gt', '$lt', '$gte', '$lte'), fc.double({ noNaN: true, noDefaultInfinity: true }))
    .map(([f, op, n]) => ({ [f]: { [op]: n } })),
  fc.tuple(field, fc.array(fc.oneof(fc.string(), fc.integer()), { maxLength: 4 })).map(([f, list]) => ({ [f]: { $in: list } })),
  fc.tuple(field, fc.boolean()).map(([f, exists]) => ({ [f]: { $exists: exists } })),
  fc.tuple(field, fc.string({ unit: 'grapheme' })).map(([f, value]) => ({ [f]: value })),
);
const condition = fc.oneof(
  { weight: 4, arbitrary: validCondition },
  fc.tuple(field, operator, jsonValue).map(([f, op, value]) => ({ [f]: { [op]: value } })),
  fc.tuple(field, fc.string({ maxLength: 20 })).map(([f, pattern]) => ({ [f]: { $regex: pattern } })),
  fc.tuple(field, jsonValue).map(([f, value]) => ({ $or: [{ [f]: value }, { event_type: 'x' }] })),
  jsonObject,
);
const destination = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      destination_type: fc.constant('database'),
      destination_config: fc.record({
        table: fc.oneof({ weight: 5, arbitrary: fc.stringMatching(/^[a-z_][a-z0-9_]{0,20}$/) }, { weight: 1, arbitrary: fc.string() }),
      }),
    }),
  },
  fc.record({
    destination_type: fc.constant('webhook'),
    // Nothing is delivered in the suite (subscribers are off): these URLs are only saved.
    destination_config: fc.record({
      url: fc.oneof(fc.webUrl(), fc.constantFrom('http://127.0.0.1/x', 'http://169.254.169.254/', 'ftp://a/')),
    }),
  }),
  fc.record({
    destination_type: fc.constant('queue'),
    destination_config: fc.record(
      {
        broker: fc.constantFrom('redis', 'nats', 'rabbitmq', 'kafka'),
        stream: fc.string({ minLength: 1 }),
        subject: fc.stringMatching(/^[a-z]+(\.[a-z]+)*$/),
        exchange: fc.string({ minLength: 1 }),
        routing_key: fc.string(),
        url: fc.constantFrom('redis://127.0.0.1:6379', 'nats://10.0.0.1:4222', 'amqp://mq.example.com', 'redis://[::1]', 'http://x'),
      },
      { requiredKeys: ['broker'] },
    ),
  }),
  fc.record({ destination_type: fc.string(), destination_config: jsonValue }),
);
export const ruleBody = fc
  .tuple(
    record({
      app_id: fc.oneof({ weight: 5, arbitrary: fc.constant('shop') }, { weight: 1, arbitrary: id }),
      rule_name: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }),
      event_type_filter: fc.option(fc.oneof(eventType, fc.constant(null), jsonValue), { nil: undefined }),
      condition: fc.option(fc.oneof(condition, fc.constant(null)), { nil: undefined }),
      priority: maybe(fc.integer({ min: -2_000_000, max: 2_000_000 })),
      is_active: maybe(fc.boolean()),
    }),
    destination,
  )
  .map(([rule, target]) => ({ ...rule, ...target }));

const schemaNode = fc.letrec<{ node: unknown }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ type: fc.constantFrom('string', 'number', 'integer', 'boolean', 'null') }),
    fc.record({
      type: fc.constant('string'),
      pattern: fc.oneof(fc.constantFrom('^[a-z]+$', '(a+)+$', '(a)\\1', 'x(?=y)'), fc.string({ maxLength: 12 })),
    }),
    fc.record({ type: fc.constant('string'), format: fc.constantFrom('email', 'uri', 'date-time', 'uuid') }),
    fc.record({
      type: fc.constant('object'),
      properties: fc.dictionary(fc.string({ maxLength: 8 }), tie('node'), { maxKeys: 3 }),
      required: fc.array(fc.string({ maxLength: 8 }), { maxLength: 2 }),
    }),
    fc.record({ type: fc.constant('array'), items: tie('node') }),
    jsonObject,
  ),
}));
export const schemaBody = fc.record(
  { schema: fc.oneof({ weight: 5, arbitrary: schemaNode.node }, { weight: 1, arbitrary: jsonValue }), partner_id: maybe(id) },
  { requiredKeys: ['schema'] },
);
