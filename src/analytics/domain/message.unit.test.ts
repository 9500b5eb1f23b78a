import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.js';
import { checkBatchContext, checkBatchCount, parseMessage } from './message.js';

const receivedAt = new Date('2026-11-24T10:00:00.000Z');
const codeOf = (run: () => unknown) => {
  try {
    run();
  } catch (error) {
    if (error instanceof ValidationError) return error.code;
    throw error;
  }
  return 'accepted';
};

describe('a tracking-API message', () => {
  it('refuses a profile trait whose name a profile cannot keep, wherever an identify or group puts it', () => {
    const long = 'é'.repeat(129); // 258 bytes
    expect(codeOf(() => parseMessage({ type: 'identify', userId: 'u', traits: { [long]: 1, plan: 'pro' } }, { receivedAt }))).toBe(
      'analytics.invalid-message',
    );
    expect(codeOf(() => parseMessage({ type: 'identify', userId: 'u', context: { traits: { [long]: 1 } } }, { receivedAt }))).toBe(
      'analytics.invalid-message',
    );
    expect(codeOf(() => parseMessage({ type: 'group', userId: 'u', groupId: 'g', traits: { [long]: 1 } }, { receivedAt }))).toBe(
      'analytics.invalid-message',
    );
    expect(codeOf(() => parseMessage({ type: 'identify', userId: 'u', traits: { ['x'.repeat(256)]: 1 } }, { receivedAt }))).toBe(
      'accepted',
    );
    // A track's context.traits feeds no profile.
    expect(codeOf(() => parseMessage({ type: 'track', event: 'e', userId: 'u', context: { traits: { [long]: 1 } } }, { receivedAt }))).toBe(
      'accepted',
    );
  });

  it('refuses C0, DEL and C1 control characters in ids and event names', () => {
    for (const control of ['\u0000', '\u001b', '\u007f', '\u0085', '\u009b']) {
      expect(codeOf(() => parseMessage({ type: 'track', event: 'e', userId: 'u', messageId: `m${control}` }, { receivedAt }))).toBe(
        'analytics.invalid-message',
      );
      expect(codeOf(() => parseMessage({ type: 'track', event: `e${control}`, userId: 'u' }, { receivedAt }))).toBe(
        'analytics.invalid-message',
      );
      expect(codeOf(() => parseMessage({ type: 'identify', userId: `u${control}` }, { receivedAt }))).toBe('analytics.invalid-message');
    }
    expect(codeOf(() => parseMessage({ type: 'track', event: 'é ü', userId: 'ü\u00a0', messageId: 'm' }, { receivedAt }))).toBe('accepted');
  });

  it('refuses a blank id, which attribution would read as none while profiles kept it', () => {
    for (const blank of ['   ', '\t', '\u00a0', '\u200b', '\ufeff \u200b']) {
      const track = (ids: object) => codeOf(() => parseMessage({ type: 'track', event: 'Order Completed', ...ids }, { receivedAt }));
      expect(track({ userId: blank })).toBe('analytics.invalid-message');
      expect(track({ userId: blank, anonymousId: 'a1' })).toBe('analytics.invalid-message');
      expect(track({ userId: 'u', anonymousId: blank })).toBe('analytics.invalid-message');
      expect(codeOf(() => parseMessage({ type: 'group', userId: 'u', groupId: blank }, { receivedAt }))).toBe('analytics.invalid-message');
      expect(codeOf(() => parseMessage({ type: 'alias', userId: 'u', previousId: blank }, { receivedAt }))).toBe(
        'analytics.invalid-message',
      );
    }
    expect(codeOf(() => parseMessage({ type: 'track', event: 'e', userId: ' u ' }, { receivedAt }))).toBe('accepted');
  });

  it('moves the timestamp by the client clock error when sentAt is present', () => {
    const message = parseMessage(
      { type: 'track', event: 'Signed Up', userId: 'u', timestamp: '2026-11-24T12:00:00.000Z', sentAt: '2026-11-24T12:00:05.000Z' },
      { receivedAt },
    );
    expect(message.payload.timestamp).toBe('2026-11-24T09:59:55.000Z');
    expect(message.payload.originalTimestamp).toBe('2026-11-24T12:00:00.000Z');
    expect(message.eventType).toBe('Signed Up');
  });

  it("keeps a client's own originalTimestamp, and a batch's sentAt for a message whose sentAt is null", () => {
    const own = parseMessage(
      {
        type: 'track',
        event: 'E',
        userId: 'u',
        timestamp: '2026-11-24T12:00:00.000Z',
        originalTimestamp: '2020-01-01T00:00:00Z',
        sentAt: '2026-11-24T12:00:05.000Z',
      },
      { receivedAt },
    );
    expect(own.payload).toMatchObject({ timestamp: '2026-11-24T09:59:55.000Z', originalTimestamp: '2020-01-01T00:00:00Z' });
    const nulled = parseMessage(
      { type: 'page', anonymousId: 'a', timestamp: '2026-11-24T09:00:00Z', sentAt: null },
      { receivedAt, sentAt: '2026-11-24T09:00:01Z' },
    );
    expect(nulled.payload).toMatchObject({ timestamp: '2026-11-24T09:59:59.000Z', sentAt: '2026-11-24T09:00:01Z' });
  });

  it("takes a single-message endpoint's type, refusing a message that says it is another", () => {
    expect(parseMessage({ event: 'E', userId: 'u' }, { receivedAt }, 'track').type).toBe('track');
    expect(parseMessage({ type: 'track', event: 'E', userId: 'u' }, { receivedAt }, 'track').type).toBe('track');
    expect(codeOf(() => parseMessage({ type: 'alias', userId: 'u2', previousId: 'u1' }, { receivedAt }, 'track'))).toBe(
      'analytics.invalid-message',
    );
    expect(codeOf(() => parseMessage({ type: 'identify', userId: 'u', traits: { plan: 'pro' } }, { receivedAt }, 'track'))).toBe(
      'analytics.invalid-message',
    );
    // Without a route (a batch), the message's own type decides.
    expect(parseMessage({ type: 'alias', userId: 'u2', previousId: 'u1' }, { receivedAt }).type).toBe('alias');
  });

  it('takes the batch sentAt when the message has none, and trusts the timestamp without any', () => {
    const batch = parseMessage(
      { type: 'page', anonymousId: 'a', timestamp: '2026-11-24T09:00:00Z' },
      { receivedAt, sentAt: '2026-11-24T09:00:01Z' },
    );
    expect(batch.payload.timestamp).toBe('2026-11-24T09:59:59.000Z');
    const none = parseMessage({ type: 'page', anonymousId: 'a', timestamp: '2026-11-24T09:00:00Z' }, { receivedAt });
    expect(none.payload.timestamp).toBe('2026-11-24T09:00:00.000Z');
    expect(none.payload).not.toHaveProperty('originalTimestamp');
  });

  it('refuses a sentAt that moves the timestamp outside the years 1970 to 9999, where instants no longer sort as text', () => {
    for (const [timestamp, sentAt] of [
      ['1970-01-01T00:00:00Z', '9999-12-31T23:59:59Z'],
      ['9999-12-31T23:59:59Z', '1970-01-01T00:00:00Z'],
    ]) {
      expect(codeOf(() => parseMessage({ type: 'track', event: 'E', userId: 'u', timestamp, sentAt }, { receivedAt }))).toBe(
        'analytics.invalid-timestamp',
      );
    }
    const late = parseMessage(
      { type: 'track', event: 'E', userId: 'u', timestamp: '1970-01-01T00:00:00Z', sentAt: '2020-01-01T00:00:00Z' },
      { receivedAt },
    );
    expect(late.payload.timestamp).toBe('1976-11-24T10:00:00.000Z');
  });

  it('refuses a timestamp more than 5 minutes after its arrival, corrected or not, which would stay the latest of its user for good', () => {
    const track = (fields: object, historical?: boolean) =>
      codeOf(() =>
        parseMessage({ type: 'track', event: 'e', userId: 'u', ...fields }, { receivedAt, ...(historical ? { historical } : {}) }),
      );
    expect(track({ timestamp: '9999-12-31T00:00:00Z' })).toBe('analytics.invalid-timestamp');
    expect(track({ timestamp: '2026-11-24T10:06:00Z' })).toBe('analytics.invalid-timestamp');
    expect(track({ timestamp: '2026-11-24T10:04:00Z' })).toBe('accepted');
    expect(track({ timestamp: '2026-11-24T12:00:00Z', sentAt: '2026-11-24T11:00:00Z' })).toBe('analytics.invalid-timestamp');
    expect(track({ timestamp: '2030-01-01T00:00:00Z' }, true)).toBe('analytics.invalid-timestamp');
  });

  it("refuses a date-time without an offset, which would be read in the server's time zone, and an hour 24", () => {
    const track = (timestamp: string) => codeOf(() => parseMessage({ type: 'track', event: 'e', userId: 'u', timestamp }, { receivedAt }));
    expect(track('2024-01-01T10:00')).toBe('analytics.invalid-timestamp');
    expect(track('2024-01-01T10:00:00.000')).toBe('analytics.invalid-timestamp');
    expect(track('2024-01-01T24:00:00Z')).toBe('analytics.invalid-timestamp');
    expect(track('2024-01-01T10:00+01:00')).toBe('accepted');
    expect(track('2024-01-01T10:00:00.5-0330')).toBe('accepted');
    expect(track('2024-01-01')).toBe('accepted');
  });

  it("takes a historical import's timestamps as sent: its sentAt is as old as its events", () => {
    const message = parseMessage(
      { type: 'track', event: 'Old Order', userId: 'u', timestamp: '2023-03-01T12:00:00.000Z', sentAt: '2023-03-01T12:00:02.000Z' },
      { receivedAt, historical: true },
    );
    expect(message.payload.timestamp).toBe('2023-03-01T12:00:00.000Z');
    expect(message.payload).not.toHaveProperty('originalTimestamp');
    expect(
      codeOf(() => parseMessage({ type: 'track', event: 'e', userId: 'u', sentAt: 'yesterday' }, { receivedAt, historical: true })),
    ).toBe('analytics.invalid-timestamp');
  });

  it('is stamped on arrival when it carries no timestamp, and gets the request ip unless it has one', () => {
    const message = parseMessage({ type: 'identify', userId: 'u', context: { locale: 'fr' } }, { receivedAt, ip: '198.51.100.7' });
    expect(message.payload).toMatchObject({
      timestamp: receivedAt.toISOString(),
      receivedAt: receivedAt.toISOString(),
      context: { locale: 'fr', ip: '198.51.100.7' },
    });
    const own = parseMessage({ type: 'identify', userId: 'u', context: { ip: '192.0.2.1' } }, { receivedAt, ip: '198.51.100.7' });
    expect((own.payload.context as { ip: string }).ip).toBe('192.0.2.1');
    const leftToUs = parseMessage({ type: 'identify', userId: 'u', context: { ip: null } }, { receivedAt, ip: '198.51.100.7' });
    expect((leftToUs.payload.context as { ip: string }).ip).toBe('198.51.100.7');
  });

  it('merges the batch context under its own', () => {
    const message = parseMessage(
      { type: 'track', event: 'e', userId: 'u', context: { locale: 'fr' } },
      { receivedAt, context: { locale: 'en', app: { name: 'shop' } } },
    );
    expect(message.payload.context).toMatchObject({ locale: 'fr', app: { name: 'shop' } });
  });

  it('counts the batch context it takes in toward its 32 KB', () => {
    const context = { pad: 'x'.repeat(20_000) };
    const small = { type: 'track', event: 'e', userId: 'u' };
    expect(parseMessage(small, { receivedAt, context }).payload.context).toMatchObject(context);
    const large = { ...small, properties: { pad: 'y'.repeat(15_000) } };
    expect(parseMessage(large, { receivedAt }).eventType).toBe('e');
    expect(codeOf(() => parseMessage(large, { receivedAt, context }))).toBe('analytics.message-too-large');
  });

  it('counts no messageId toward its 32 KB: a line `intake import` gives one stays as large as it was', () => {
    const line = { type: 'track', event: 'e', userId: 'u', properties: { pad: '' } };
    line.properties.pad = 'q'.repeat(32 * 1024 - Buffer.byteLength(JSON.stringify(line)));
    expect(Buffer.byteLength(JSON.stringify(line))).toBe(32 * 1024);
    const keyed = { ...line, messageId: `import-${'a'.repeat(40)}` };
    expect(parseMessage(keyed, { receivedAt }).eventType).toBe('e');
    const over = { ...keyed, properties: { pad: `${line.properties.pad}q` } };
    expect(() => parseMessage(over, { receivedAt })).toThrow(/is 32769 bytes, more than the 32768 allowed/);
  });

  it('refuses a batch of more than 2,500 messages', () => {
    expect(() => checkBatchCount(2500)).not.toThrow();
    expect(codeOf(() => checkBatchCount(2501))).toBe('analytics.batch-too-large');
  });

  it('refuses a batch whose context, copied into each message, would add more than 512 KB', () => {
    // 3,000 messages under a 100 KB context stored 725 MB from a 234 KB request.
    expect(codeOf(() => checkBatchContext({ pad: 'x'.repeat(100 * 1024) }, 3000))).toBe('analytics.batch-too-large');
    expect(codeOf(() => checkBatchContext({ pad: 'x'.repeat(100 * 1024) }, 6))).toBe('analytics.batch-too-large');
    // What SDKs send with a batch: the library's name and version, a few hundred bytes for hundreds of messages.
    expect(checkBatchContext({ library: { name: 'analytics-go', version: '3.3.0' } }, 250)).toBeLessThan(100);
    expect(checkBatchContext(undefined, 10_000)).toBe(0);
  });

  it('refuses a timestamp or sentAt on a day its month does not have, which date parsing would roll over', () => {
    const track = (fields: object) => codeOf(() => parseMessage({ type: 'track', event: 'e', userId: 'u', ...fields }, { receivedAt }));
    expect(track({ timestamp: '2026-02-30T00:00:00Z' })).toBe('analytics.invalid-timestamp');
    expect(track({ timestamp: '2026-04-31' })).toBe('analytics.invalid-timestamp');
    expect(track({ sentAt: '2025-02-29T00:00:00Z' })).toBe('analytics.invalid-timestamp');
    expect(track({ timestamp: '2024-02-29T00:00:00Z' })).toBe('accepted');
  });

  it('is refused, each fault with its own code', () => {
    expect(codeOf(() => parseMessage({ userId: 'u' }, { receivedAt }))).toBe('analytics.missing-type');
    expect(codeOf(() => parseMessage({ type: 'purchase', userId: 'u' }, { receivedAt }))).toBe('analytics.unknown-type');
    expect(codeOf(() => parseMessage({ type: 'track', event: 'e' }, { receivedAt }))).toBe('analytics.missing-identity');
    expect(codeOf(() => parseMessage({ type: 'alias', previousId: 'a' }, { receivedAt }))).toBe('analytics.missing-identity');
    expect(codeOf(() => parseMessage({ type: 'track', event: 'e', userId: 'u', timestamp: 'soon' }, { receivedAt }))).toBe(
      'analytics.invalid-timestamp',
    );
    expect(codeOf(() => parseMessage({ type: 'track', userId: 'u' }, { receivedAt }))).toBe('analytics.invalid-message');
    expect(codeOf(() => parseMessage({ type: 'group', userId: 'u' }, { receivedAt }))).toBe('analytics.invalid-message');
    expect(codeOf(() => parseMessage({ type: 'track', event: 'e', userId: 'u', properties: 'x' }, { receivedAt }))).toBe(
      'analytics.invalid-message',
    );
    expect(codeOf(() => parseMessage({ type: 'track', event: 'e', userId: 'u', blob: 'x'.repeat(40_000) }, { receivedAt }))).toBe(
      'analytics.message-too-large',
    );
    expect(codeOf(() => parseMessage({ event: 'e', userId: 'u' }, { receivedAt }, 'track'))).toBe('accepted');
  });
});
