import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ValidationError } from '../errors.js';
import { findJsonFault, mayHoldSurrogates, unsafeIntegerLiterals, type JsonFault, type JsonLimits } from './json-faults.js';

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
  constructor(readonly fault: JsonFault) {}

  /** The problem the element alone is rejected with. */
  toError(): ValidationError {
    return faultError(this.fault);
  }
}

const CODES: Record<JsonFault['kind'], string> = {
  'too-deep': 'request.json-too-deep',
  'lone-surrogate': 'request.invalid-unicode',
  'number-out-of-range': 'request.number-out-of-range',
  'unsafe-integer': 'request.number-out-of-range',
};

/**
 * Replaces Fastify's JSON parser (keeping its `__proto__` and `constructor` refusals) with one that
 * also holds every body to the limits, so nothing downstream (serializers, the event store) ever
 * sees JSON too deep to walk, strings that are not valid Unicode, or numbers it would change.
 */
export function registerJsonLimits(app: FastifyInstance, limits: JsonLimits): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  const parseLimited = (request: FastifyRequest, text: string) =>
    new Promise<unknown>((resolve, reject) => {
      parseJson(request, text, (error, body) => {
        if (error) return reject(isWellFormed(text) ? forbiddenKey() : error);
        try {
          resolve(checked(request, body, text, limits));
        } catch (refused) {
          reject(refused as Error);
        }
      });
    });
  app.decorate('parseLimitedJson', parseLimited);
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, async (request: FastifyRequest, text: string | Buffer) => {
    refuseEncoded(request);
    return parseLimited(request, String(text));
  });
}

function checked(request: FastifyRequest, body: unknown, text: string, limits: JsonLimits): unknown {
  const unsafe = unsafeIntegerLiterals(text);
  const surrogates = mayHoldSurrogates(text);
  const itemsField = request.routeOptions.config.jsonItems;
  const items = itemsField !== undefined && isObject(body) ? body[itemsField] : undefined;
  if (itemsField === undefined || !isObject(body) || !Array.isArray(items)) {
    refuseOn(findJsonFault(body, limits, unsafe, surrogates));
    return body;
  }
  const envelope = { ...body, [itemsField]: [] };
  refuseOn(findJsonFault(envelope, limits, unsafe, surrogates));
  return {
    ...body,
    [itemsField]: items.map((item: unknown) => {
      const fault = findJsonFault(item, limits, unsafe, surrogates);
      return fault ? new RefusedJsonItem(fault) : item;
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

/** Fastify's parser refuses `__proto__` and `constructor.prototype` keys as if the JSON were malformed. */
function isWellFormed(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function forbiddenKey(): ValidationError {
  const message = 'has a "__proto__" or "constructor": {"prototype"} key, which is not accepted';
  return new ValidationError('request.forbidden-key', `body ${message}`, [{ path: 'body', message }]);
}
