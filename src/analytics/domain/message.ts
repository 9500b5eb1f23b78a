import { ValidationError, type Violation } from '../../shared/errors.js';
import { isCalendarDate, MAX_CLOCK_SKEW_MS } from '../../shared/contracts/tracking-values.js';
import type { JsonObject } from '../../shared/events.js';
import { longerThan } from '../../shared/contracts/text-length.js';

/**
 * A message of the Segment / RudderStack HTTP Tracking API, checked and normalised: the clock-skew
 * rule applied, `receivedAt` set, `context.ip` filled. It is stored whole as the event's payload.
 */
export const MESSAGE_TYPES = ['track', 'identify', 'page', 'screen', 'group', 'alias'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

export interface AnalyticsMessage {
  readonly type: MessageType;
  /** `event_type` of the stored event: the track event's name, or the message type. */
  readonly eventType: string;
  readonly messageId: string | undefined;
  readonly payload: JsonObject;
}

/** What the request adds to every message it carries. */
export interface Arrival {
  readonly receivedAt: Date;
  readonly ip?: string;
  /** The batch's own `sentAt`, used by messages that carry none. */
  readonly sentAt?: unknown;
  /** The batch's `context`, merged under each message's own. */
  readonly context?: unknown;
  /**
   * A historical import (`/v1/import`): timestamps are taken as sent. An export's `sentAt` is as old as
   * its events, and the clock-skew rule would move them all to the time of the import.
   */
  readonly historical?: boolean;
}

/**
 * Bytes the batch's `context` adds to each of its messages, which store it merged into their own:
 * it counts toward each message's 32 KB, and its copies toward `MAX_CONTEXT_COPIES_BYTES`.
 */
export function contextBytesOf(context: unknown): number {
  return typeof context === 'object' && context !== null && !Array.isArray(context) ? Buffer.byteLength(JSON.stringify(context)) : 0;
}

/**
 * What the copies of a batch's context may add to what one request stores: a 500 KB batch of 3,000
 * small messages under a 100 KB context stored 725 MB in 14 s. SDKs that send a context with the
 * batch send a few hundred bytes (analytics-go: the library's name and version).
 */
export const MAX_CONTEXT_COPIES_BYTES = 512 * 1024;

/** Refuses a batch whose context, stored with each of its messages, would add more than `MAX_CONTEXT_COPIES_BYTES`. */
export function checkBatchContext(context: unknown, messages: number): number {
  const bytes = contextBytesOf(context);
  if (bytes * messages > MAX_CONTEXT_COPIES_BYTES) {
    throw fail(
      MESSAGE_ERRORS.batchTooLarge,
      'context',
      `is ${bytes} bytes, stored with each of the batch's ${messages} messages: ${bytes * messages} bytes, more than the ` +
        `${MAX_CONTEXT_COPIES_BYTES} a batch's context may add (send it with fewer messages, or in each message)`,
    );
  }
  return bytes;
}

/**
 * Messages one request may carry. 500 KB holds some 8,000 of the smallest messages, whose checks and
 * receipts held the HTTP thread for 100–250 ms; 2,500 hold it for about 40 ms. SDKs send far fewer
 * (analytics-node 15 by default, analytics-go and analytics-java 250, `intake import` at most 500).
 */
export const MAX_BATCH_MESSAGES = 2500;

/** Refuses a batch of more than `MAX_BATCH_MESSAGES` messages, before any of them is read. */
export function checkBatchCount(messages: number): void {
  if (messages > MAX_BATCH_MESSAGES)
    throw fail(
      MESSAGE_ERRORS.batchTooLarge,
      'batch',
      `holds ${messages} messages, more than the ${MAX_BATCH_MESSAGES} a request may carry (send them in several batches)`,
    );
}

export const MAX_MESSAGE_BYTES = 32 * 1024;
const MAX_ID_LENGTH = 255;
const MAX_EVENT_NAME = 128;
// A date alone is UTC; a date-time names its offset, since one without would be read in the server's time zone.
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,9})?)?(Z|[+-]([01]\d|2[0-3]):?[0-5]\d))?$/i;
// C0, DEL and C1 (U+0080–U+009F), as the ids and event types of the other APIs refuse them.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;

/** Stable codes of the ways a message is refused; the HTTP edge maps them to statuses. */
export const MESSAGE_ERRORS = {
  invalid: 'analytics.invalid-message',
  missingType: 'analytics.missing-type',
  unknownType: 'analytics.unknown-type',
  missingIdentity: 'analytics.missing-identity',
  invalidTimestamp: 'analytics.invalid-timestamp',
  tooLarge: 'analytics.message-too-large',
  batchTooLarge: 'analytics.batch-too-large',
} as const;

const fail = (code: string, path: string, message: string) => new ValidationError(code, `${path} ${message}`, [{ path, message }]);

/** What `"messageId":…,` adds to a message's JSON, when its id is one the message may have. */
function idBytesOf(raw: object): number {
  const id = (raw as { messageId?: unknown }).messageId;
  if (typeof id !== 'string' && typeof id !== 'number') return 0;
  return '"messageId":,'.length + Buffer.byteLength(JSON.stringify(id));
}

/**
 * Checks one raw message and returns it ready to store, or throws a ValidationError whose code says
 * what is wrong. `route` is the type the endpoint implies (`/v1/track`), when there is one.
 */
export function parseMessage(
  raw: unknown,
  arrival: Arrival,
  route?: MessageType,
  contextBytes = contextBytesOf(arrival.context),
): AnalyticsMessage {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw fail(MESSAGE_ERRORS.invalid, 'message', 'must be a JSON object');
  // As it is stored: with the batch's context merged into its own (counted whole, an upper bound).
  // Its messageId has a bound of its own, and `intake import` adds one where a line has none: a line
  // within the limit stays within it.
  const size = Buffer.byteLength(JSON.stringify(raw)) + contextBytes - idBytesOf(raw);
  if (size > MAX_MESSAGE_BYTES)
    throw fail(
      MESSAGE_ERRORS.tooLarge,
      'message',
      `is ${size} bytes${contextBytes > 0 ? ` with the batch's context (${contextBytes})` : ''}, more than the ${MAX_MESSAGE_BYTES} allowed`,
    );
  const message = raw as Record<string, unknown>;
  const type = route === undefined ? parseType(message.type) : routedType(message.type, route);
  const violations: Violation[] = [];
  const check = (run: () => void) => {
    try {
      run();
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      violations.push(...error.violations);
      firstCode ??= error.code;
    }
  };
  let firstCode: string | undefined;
  let eventName: string | undefined;
  check(() => checkIdentity(type, message));
  check(() => checkOptionalId(message.messageId, 'messageId'));
  if (type === 'track') check(() => (eventName = parseEventName(message.event)));
  if (type === 'group') check(() => checkRequiredId(message.groupId, 'groupId'));
  for (const field of ['properties', 'traits', 'context', 'integrations'] as const) {
    check(() => checkOptionalObject(message[field], field));
  }
  if (type === 'identify' || type === 'group') check(() => checkTraitNames(message.traits, 'traits'));
  if (type === 'identify') check(() => checkTraitNames(asObject(message.context).traits, 'context.traits'));
  let timing: Timing | undefined;
  check(() => (timing = correctedTiming(message, arrival)));
  if (violations.length > 0 || !timing) {
    const code = violations.length === 1 && firstCode ? firstCode : MESSAGE_ERRORS.invalid;
    throw new ValidationError(code, `invalid ${type} message: ${violations.map((v) => `${v.path} ${v.message}`).join('; ')}`, violations);
  }
  const context = { ...asObject(arrival.context), ...asObject(message.context) };
  // `null` as well: analytics.js sends `ip: null` when it leaves the address to the server.
  if ((context.ip === undefined || context.ip === null) && arrival.ip) context.ip = arrival.ip;
  const { writeKey: _writeKey, ...kept } = message;
  const payload: JsonObject = {
    ...(kept as JsonObject),
    type,
    context: context as JsonObject,
    timestamp: timing.timestamp,
    receivedAt: arrival.receivedAt.toISOString(),
    // The client's own originalTimestamp, when it sent one, is what it says: kept as sent.
    ...(timing.originalTimestamp !== undefined && (message.originalTimestamp ?? null) === null
      ? { originalTimestamp: timing.originalTimestamp }
      : {}),
    // A batch's own sentAt, which corrected this message's clock, is kept with it as the message's would
    // be (a message's `sentAt: null` is no sentAt: the batch's corrected it).
    ...((message.sentAt ?? null) === null && typeof arrival.sentAt === 'string' ? { sentAt: arrival.sentAt } : {}),
  };
  const messageId = message.messageId === undefined || message.messageId === null ? undefined : String(message.messageId);
  return { type, eventType: eventName ?? type, messageId, payload };
}

/**
 * A single-message endpoint's own type (`/v1/track`): a message saying it is another would change
 * profiles or aliases through a path meant for events, so it is refused rather than obeyed.
 */
function routedType(value: unknown, route: MessageType): MessageType {
  if (value === undefined || value === null || value === '' || value === route) return route;
  throw fail(MESSAGE_ERRORS.invalid, 'type', `must be ${route} (or left out) on this endpoint, which takes ${route} messages`);
}

function parseType(value: unknown): MessageType {
  if (value === undefined || value === null || value === '') throw fail(MESSAGE_ERRORS.missingType, 'type', 'is required');
  if (typeof value !== 'string' || !(MESSAGE_TYPES as readonly string[]).includes(value)) {
    throw fail(MESSAGE_ERRORS.unknownType, 'type', `must be one of ${MESSAGE_TYPES.join(', ')}`);
  }
  return value as MessageType;
}

function checkIdentity(type: MessageType, message: Record<string, unknown>): void {
  if (type === 'alias') {
    checkRequiredId(message.userId, 'userId', MESSAGE_ERRORS.missingIdentity);
    checkRequiredId(message.previousId, 'previousId', MESSAGE_ERRORS.missingIdentity);
    return;
  }
  const hasUser = message.userId !== undefined && message.userId !== null && message.userId !== '';
  const hasAnonymous = message.anonymousId !== undefined && message.anonymousId !== null && message.anonymousId !== '';
  if (!hasUser && !hasAnonymous) throw fail(MESSAGE_ERRORS.missingIdentity, 'userId', 'or anonymousId is required');
  if (hasUser) checkRequiredId(message.userId, 'userId');
  if (hasAnonymous) checkRequiredId(message.anonymousId, 'anonymousId');
}

function checkRequiredId(value: unknown, path: string, code: string = MESSAGE_ERRORS.invalid): void {
  if (value === undefined || value === null || value === '') throw fail(code, path, 'is required');
  checkOptionalId(value, path);
}

/** Nothing but spaces and invisible format characters (a zero-width space, a BOM): no id anyone can read. */
const BLANK = /^[\s\p{Cf}]*$/u;

function checkOptionalId(value: unknown, path: string): void {
  if (value === undefined || value === null) return;
  // Segment accepts numeric ids and treats them as text.
  if (typeof value === 'number' && Number.isFinite(value)) return;
  // Blank is refused too: attribution reads a blank id as none, so a blank user's orders were no conversions.
  if (typeof value !== 'string' || BLANK.test(value)) throw fail(MESSAGE_ERRORS.invalid, path, 'must be a non-empty string, not blank');
  if (longerThan(value, MAX_ID_LENGTH)) throw fail(MESSAGE_ERRORS.invalid, path, `must be at most ${MAX_ID_LENGTH} characters`);
  if (CONTROL_CHARACTERS.test(value)) throw fail(MESSAGE_ERRORS.invalid, path, 'must not contain control characters');
}

function parseEventName(value: unknown): string {
  if (typeof value !== 'string' || value.trim().length === 0)
    throw fail(MESSAGE_ERRORS.invalid, 'event', 'is required for a track message');
  if (longerThan(value, MAX_EVENT_NAME)) throw fail(MESSAGE_ERRORS.invalid, 'event', `must be at most ${MAX_EVENT_NAME} characters`);
  if (CONTROL_CHARACTERS.test(value)) throw fail(MESSAGE_ERRORS.invalid, 'event', 'must not contain control characters');
  return value.trim();
}

/**
 * A profile keeps each trait under its name, in an index whose entries PostgreSQL caps at 2,704 bytes
 * with the application and user ids: a longer name was accepted, then failed the whole message's profile.
 */
export const MAX_TRAIT_NAME_BYTES = 256;

function checkTraitNames(traits: unknown, path: string): void {
  if (typeof traits !== 'object' || traits === null || Array.isArray(traits)) return;
  for (const name of Object.keys(traits)) {
    const bytes = Buffer.byteLength(name);
    if (bytes > MAX_TRAIT_NAME_BYTES) {
      throw fail(
        MESSAGE_ERRORS.invalid,
        path,
        `holds a trait name of ${bytes} bytes, more than the ${MAX_TRAIT_NAME_BYTES} a profile keeps`,
      );
    }
  }
}

function checkOptionalObject(value: unknown, path: string): void {
  if (value === undefined || value === null) return;
  if (typeof value !== 'object' || Array.isArray(value)) throw fail(MESSAGE_ERRORS.invalid, path, 'must be an object');
}

const asObject = (value: unknown): Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};

interface Timing {
  readonly timestamp: string;
  readonly originalTimestamp?: string;
}

/**
 * Segment's clock-skew rule: the client's clock may be wrong, but the gap between when the event
 * happened and when the client sent it is right, so `timestamp = receivedAt − (sentAt − timestamp)`.
 * Whatever the rule gives may not lie more than a few minutes after the arrival: an event dated years
 * ahead would stay the latest of its user for good (traits merged by time, the last touch).
 */
export function correctedTiming(message: Record<string, unknown>, arrival: Arrival): Timing {
  const timestamp = parseDate(message.timestamp ?? message.originalTimestamp, 'timestamp');
  const sentAt = parseDate(message.sentAt ?? arrival.sentAt, 'sentAt');
  const received = arrival.receivedAt.getTime();
  if (timestamp === undefined) return { timestamp: arrival.receivedAt.toISOString() };
  if (sentAt === undefined || arrival.historical) return { timestamp: notAhead(timestamp, received, 'is') };
  const corrected = received - (sentAt - timestamp);
  // Instants are stored as text that sorts in time order: a year before 1970 or after 9999 is written
  // with a sign (-006004-…, +010056-…) and would sort among the others at random.
  if (corrected < 0 || corrected > LAST_INSTANT) {
    throw fail(MESSAGE_ERRORS.invalidTimestamp, 'sentAt', 'with timestamp, moves the event outside the years 1970 to 9999');
  }
  return { timestamp: notAhead(corrected, received, 'corrected by sentAt, is'), originalTimestamp: new Date(timestamp).toISOString() };
}

function notAhead(at: number, received: number, what: string): string {
  if (at > received + MAX_CLOCK_SKEW_MS) {
    throw fail(
      MESSAGE_ERRORS.invalidTimestamp,
      'timestamp',
      `${what} more than ${MAX_CLOCK_SKEW_MS / 60_000} minutes after the message arrived (${new Date(received).toISOString()})`,
    );
  }
  return new Date(at).toISOString();
}

const LAST_INSTANT = Date.parse('9999-12-31T23:59:59.999Z');

function parseDate(value: unknown, path: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || !ISO_DATE.test(value)) {
    throw fail(MESSAGE_ERRORS.invalidTimestamp, path, 'must be an ISO-8601 date-time such as 2026-11-24T10:00:00.000Z');
  }
  const at = Date.parse(value);
  const [year, month, day] = [value.slice(0, 4), value.slice(5, 7), value.slice(8, 10)].map(Number) as [number, number, number];
  if (Number.isNaN(at) || at < 0 || !isCalendarDate(year, month, day))
    throw fail(MESSAGE_ERRORS.invalidTimestamp, path, 'is not a valid date-time');
  return at;
}
