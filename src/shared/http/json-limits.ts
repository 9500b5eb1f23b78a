import { isUtf8 } from 'node:buffer';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ValidationError } from '../errors.js';
import {
  findJsonFault,
  hasLoneSurrogate,
  mayHoldSurrogates,
  unsafeIntegerLiterals,
  unsafeIntegerLiteralsByItem,
  type JsonFault,
  type JsonLimits,
} from './json-faults.js';

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * JSON text parsed as `application/json` bodies are, held to the same limits: for routes that
     * decode their bodies themselves (compressed, or labelled otherwise).
     */
    parseLimitedJson(request: FastifyRequest, text: string): Promise<unknown>;
  }
  interface FastifyContextConfig {
    /**
     * A top-level array field whose elements are separate documents (a batch's `events`): each one
     * is held to the JSON limits alone, and one that breaks them becomes a `RefusedJsonItem` in
     * place, for the route to reject alone, instead of failing the whole request.
     */
    jsonItems?: string;
  }
}

/** Stands in the parsed body for a batch element that broke the JSON limits. */
export class RefusedJsonItem {
  constructor(
    readonly fault: JsonFault,
    private readonly item: unknown,
  ) {}

  /** The problem the element alone is rejected with. */
  toError(): ValidationError {
    return faultError(this.fault);
  }

  /**
   * The element's own top-level id field `name`, as text, for a receipt to say which element was
   * refused: a string the limits would pass, or a number (ids may be numbers, taken as text) that JSON
   * holds exactly. The rest of the element goes no further.
   */
  idField(name: string): string | undefined {
    const value = isObject(this.item) && Object.hasOwn(this.item, name) ? this.item[name] : undefined;
    if (typeof value === 'number')
      return Number.isFinite(value) && (!Number.isInteger(value) || Number.isSafeInteger(value)) ? String(value) : undefined;
    return typeof value === 'string' && !hasLoneSurrogate(value) && !value.includes('\0') ? value : undefined;
  }
}

const CODES: Record<JsonFault['kind'], string> = {
  'too-deep': 'request.json-too-deep',
  'too-many-values': 'request.json-too-many-values',
  'lone-surrogate': 'request.invalid-unicode',
  'nul-character': 'request.invalid-unicode',
  'number-out-of-range': 'request.number-out-of-range',
  'unsafe-integer': 'request.number-out-of-range',
  'forbidden-key': 'request.forbidden-key',
};

/**
 * Replaces Fastify's JSON parser with one that holds every body to the limits, so nothing downstream
 * (serializers, the event store) ever sees bytes that are not UTF-8, JSON too deep to walk, strings
 * that are not valid Unicode, numbers it would change, or `__proto__` and `constructor.prototype`
 * keys. JSON.parse keeps such keys as plain data; the walk that checks the limits finds them, so in a
 * batch one event with them is rejected alone.
 */
export function registerJsonLimits(app: FastifyInstance, limits: JsonLimits): void {
  const parseLimited = async (request: FastifyRequest, text: string) => {
    let body: unknown;
    try {
      body = JSON.parse(text.charCodeAt(0) === BYTE_ORDER_MARK ? text.slice(1) : text);
    } catch (error) {
      throw new ValidationError('request.malformed-json', `the body is not valid JSON: ${(error as Error).message}`);
    }
    return checked(request, body, text, limits);
  };
  app.decorate('parseLimitedJson', parseLimited);
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, async (request: FastifyRequest, raw: string | Buffer) => {
    // No body at all, as clients that label every request JSON send a DELETE: a route that needs one
    // still refuses it (its schema asks for an object), the others go on, whatever the labels say.
    if (raw.length === 0) return undefined;
    refuseEncoded(request);
    checkCharset(request.headers['content-type']);
    return parseLimited(request, utf8Text(raw));
  });
}

const BYTE_ORDER_MARK = 0xfeff;

/** UTF-8 and its subset: a body declared in another charset would be read as UTF-8 and stored changed, or refused for the wrong reason. */
const JSON_CHARSETS = new Set(['utf-8', 'utf8', 'us-ascii']);

/** Refuses a Content-Type whose `charset` parameter names anything but UTF-8 (415). */
export function checkCharset(contentType: string | undefined): void {
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(contentType ?? '')?.[1]?.toLowerCase();
  if (charset !== undefined && !JSON_CHARSETS.has(charset))
    throw new ValidationError('request.unsupported-charset', `charset "${charset}" is not accepted: send the body as UTF-8`);
}

/** The body as text; bytes that are not UTF-8 are refused rather than replaced with U+FFFD. */
export function utf8Text(raw: string | Buffer): string {
  if (typeof raw === 'string') return raw;
  if (!isUtf8(raw)) {
    throw new ValidationError('request.invalid-unicode', 'the body is not valid UTF-8', [{ path: 'body', message: 'is not valid UTF-8' }]);
  }
  return raw.toString('utf8');
}

function checked(request: FastifyRequest, body: unknown, text: string, limits: JsonLimits): unknown {
  const surrogates = mayHoldSurrogates(text);
  const itemsField = request.routeOptions.config.jsonItems;
  const items = itemsField !== undefined && isObject(body) ? body[itemsField] : undefined;
  if (itemsField === undefined || !isObject(body) || !Array.isArray(items)) {
    refuseOn(findJsonFault(body, limits, unsafeIntegerLiterals(text), surrogates));
    return body;
  }
  const unsafe = unsafeIntegerLiteralsByItem(text, itemsField);
  const envelope = { ...body, [itemsField]: [] };
  refuseOn(findJsonFault(envelope, limits, unsafe.outside, surrogates));
  const none = new Set<number>();
  return {
    ...body,
    [itemsField]: items.map((item: unknown, index) => {
      const fault = findJsonFault(item, limits, unsafe.inItems.get(index) ?? none, surrogates);
      return fault ? new RefusedJsonItem(fault, item) : item;
    }),
  };
}

/**
 * Only the tracking API (`/v1/*`, for the SDKs) takes compressed bodies; elsewhere a gzipped body
 * would be read as broken JSON, or a `br` label ignored, so any coding is refused by name.
 */
function refuseEncoded(request: FastifyRequest): void {
  const encoding = request.headers['content-encoding']?.trim().toLowerCase();
  if (encoding === undefined || encoding === '' || encoding === 'identity') return;
  throw new ValidationError(
    'request.unsupported-encoding',
    `Content-Encoding "${encoding}" is not accepted here; send plain JSON (the tracking API /v1/* takes gzip and deflate)`,
  );
}

function refuseOn(fault: JsonFault | undefined): void {
  if (fault) throw faultError(fault);
}

function faultError(fault: JsonFault): ValidationError {
  return new ValidationError(CODES[fault.kind], `${fault.path} ${fault.message}`, [{ path: fault.path, message: fault.message }]);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
