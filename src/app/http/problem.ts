import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import {
  ConflictError,
  DomainError,
  ForbiddenError,
  NotFoundError,
  UnauthorizedError,
  UnavailableError,
  ValidationError,
  type Violation,
} from '../../shared/errors.js';
import type { ErrorLogSummary } from './error-log-summary.js';
import { UNKNOWN_FIELD } from '../../shared/contracts/known-fields.js';
import { loggableUrl } from './loggable-url.js';
import { isStorageFault, storageUnavailable, waitedTooLongForALock } from '../../shared/event-store/storage-fault.js';

/** RFC 9457 problem details, with the stable error code and field violations as extensions. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  code: string;
  errors?: Violation[];
}

interface Mapping {
  readonly status: number;
  readonly title: string;
}

// The one place where error codes become HTTP statuses. Codes not listed fall back to their class.
const BY_CODE: Record<string, Mapping> = {
  'request.body-too-large': { status: 413, title: 'Payload too large' },
  'request.json-too-many-values': { status: 413, title: 'Too many JSON values' },
  'request.unsupported-media-type': { status: 415, title: 'Unsupported media type' },
  'request.malformed-json': { status: 400, title: 'Malformed JSON' },
  'request.bad-url': { status: 400, title: 'Bad URL' },
  'request.path-too-long': { status: 414, title: 'URI too long' },
  'request.invalid': { status: 400, title: 'Invalid request' },
  'request.aborted': { status: 400, title: 'Request aborted' },
  'request.unsupported-encoding': { status: 415, title: 'Unsupported content encoding' },
  'request.unsupported-charset': { status: 415, title: 'Unsupported charset' },
  'analytics.message-too-large': { status: 413, title: 'Message too large' },
  'analytics.batch-too-large': { status: 413, title: 'Batch too large' },
  'route.not-found': { status: 404, title: 'Not found' },
  'route.method-not-allowed': { status: 405, title: 'Method not allowed' },
  'event-store.overloaded': { status: 503, title: 'Overloaded' },
  'event-store.concurrency': { status: 409, title: 'Conflict' },
  'ingestion.idempotency-key-reused': { status: 422, title: 'Idempotency key reused' },
  'tracking.idempotency-key-reused': { status: 422, title: 'Idempotency key reused' },
  'attribution.idempotency-key-reused': { status: 422, title: 'Idempotency key reused' },
  'routing.rules-too-costly': { status: 422, title: 'Too costly to route' },
};

function byClass(error: DomainError): Mapping {
  if (error instanceof ValidationError) return { status: 400, title: 'Invalid request' };
  if (error instanceof NotFoundError) return { status: 404, title: 'Not found' };
  if (error instanceof ConflictError) return { status: 409, title: 'Conflict' };
  if (error instanceof UnauthorizedError) return { status: 401, title: 'Unauthorized' };
  if (error instanceof ForbiddenError) return { status: 403, title: 'Forbidden' };
  if (error instanceof UnavailableError) return { status: 503, title: 'Service unavailable' };
  return { status: 500, title: 'Internal error' };
}

// Fastify's own errors (parsing, limits, schema validation) join the same table through a code of ours.
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'request.body-too-large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'request.unsupported-media-type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'request.invalid',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'request.malformed-json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'request.malformed-json',
  FST_ERR_VALIDATION: 'request.invalid',
  FST_ERR_BAD_URL: 'request.bad-url',
  FST_ERR_MAX_PARAM_LENGTH: 'request.path-too-long',
};

// Fastify's message would echo the whole (long) path back.
const FIXED_DETAILS: Record<string, string> = {
  'request.path-too-long': 'a path parameter is longer than the server accepts',
};

/** The client closed the connection before its body arrived: Node says ECONNRESET, "aborted". */
const isAbortedRequest = (error: unknown) => {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return code === 'ECONNRESET' && message === 'aborted';
};

export function problemFor(error: unknown, instance: string): Problem {
  // The client's doing, not an outage: counting it as the database unreachable misled whoever read the log.
  if (isAbortedRequest(error)) {
    return problemFor(new ValidationError('request.aborted', 'the client closed the connection before the body arrived', []), instance);
  }
  // The database or broker cannot be reached or cannot work now (a lost connection, a full disk, a
  // failing or busy SQLite file, a table gone): the request may succeed later, so 503, not 500.
  if (!(error instanceof DomainError) && isStorageFault(error)) {
    return problemFor(
      new UnavailableError('service.dependency-unavailable', 'the database is unreachable right now; retry shortly', 1),
      instance,
    );
  }
  if (error instanceof DomainError) {
    const mapping = BY_CODE[error.code] ?? byClass(error);
    const violations = error instanceof ValidationError && error.violations.length > 0 ? { errors: [...error.violations] } : {};
    return {
      type: typeOf(error.code),
      title: mapping.title,
      status: mapping.status,
      detail: error.message,
      instance,
      code: error.code,
      ...violations,
    };
  }
  const fastifyError = error as Partial<FastifyError> & {
    validation?: Array<{ instancePath?: string; message?: string; params?: Record<string, unknown> }>;
  };
  const status = fastifyError.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const code = FASTIFY_CODES[fastifyError.code ?? ''] ?? (error instanceof SyntaxError ? 'request.malformed-json' : 'request.invalid');
    const mapping = BY_CODE[code] ?? { status, title: 'Bad request' };
    const errors = fastifyError.validation && violationsOf(fastifyError.validationContext, fastifyError.validation);
    const detail = errors?.length
      ? errors.map((e) => `${e.path} ${e.message}`).join('; ')
      : (FIXED_DETAILS[code] ?? fastifyError.message ?? 'bad request');
    return {
      type: typeOf(code),
      title: mapping.title,
      status: mapping.status,
      detail,
      instance,
      code,
      ...(errors?.length ? { errors } : {}),
    };
  }
  return {
    type: typeOf('internal'),
    title: 'Internal error',
    status: 500,
    detail: 'an unexpected error occurred; it has been logged',
    instance,
    code: 'internal',
  };
}

/**
 * Answers with the problem. Unknown errors are logged with their stack (and the request id);
 * expected ones (4xx, 503) only go to `summary`, which counts them, so a flood of them stays calm.
 */
export async function sendProblem(raised: unknown, request: FastifyRequest, reply: FastifyReply, summary?: ErrorLogSummary): Promise<void> {
  // A table held locked by another session is a busy database, not an unreachable one.
  const error = waitedTooLongForALock(raised) ? storageUnavailable(raised) : raised;
  // The URL as logged: a write key sent in the query (`?writeKey=`) or the path is not echoed back.
  const mapped = problemFor(error, loggableUrl(request.url, request.params));
  // Fastify's own refusals get their detail from the request; ours (a body that decompresses past the
  // limit) say what they mean already.
  const problem = isFrameworkError(error) ? withRequestDetail(mapped, request) : mapped;
  if (problem.status === 503) {
    reply.header('retry-after', String(error instanceof UnavailableError ? error.retryAfterSeconds : 1));
    // A raw driver error says why the dependency is away; a DomainError's code already does.
    const cause = error instanceof DomainError ? undefined : String((error as { message?: unknown } | null)?.message ?? error);
    if (summary) summary.count(problem.status, problem.code, cause);
    else request.log.warn({ err: error }, 'dependency unavailable');
  } else if (problem.status >= 500) {
    request.log.error({ err: error }, 'request failed');
  } else {
    summary?.count(problem.status, problem.code);
  }
  if (error instanceof UnauthorizedError) reply.header('www-authenticate', 'Bearer');
  await reply.status(problem.status).type('application/problem+json').send(problem);
}

const isFrameworkError = (error: unknown) => String((error as { code?: unknown } | null)?.code ?? '').startsWith('FST_');

/** Fastify's own words for a size or type it refused name neither the limit nor what is accepted: these do. */
function withRequestDetail(problem: Problem, request: FastifyRequest): Problem {
  if (problem.code === 'request.body-too-large') {
    const limit = request.routeOptions.bodyLimit;
    return limit ? { ...problem, detail: `the body is larger than the ${limit.toLocaleString('en')} bytes this endpoint takes` } : problem;
  }
  if (problem.code === 'request.unsupported-media-type') {
    const given = request.headers['content-type'] ?? '(none)';
    return { ...problem, detail: `Content-Type ${given} is not accepted here: send application/json` };
  }
  return problem;
}

function typeOf(code: string): string {
  return `urn:intake:problem:${code}`;
}

type SchemaError = { instancePath?: string; schemaPath?: string; keyword?: string; message?: string; params?: Record<string, unknown> };

/**
 * A choice of constants (TypeBox's union of literals) fails once per constant, each "must be equal to
 * constant": the allowed values, said together, are the useful detail.
 */
function allowedValuesAt(errors: readonly SchemaError[], instancePath: string | undefined): unknown[] {
  return errors.flatMap((e) =>
    e.instancePath !== instancePath
      ? []
      : e.keyword === 'const'
        ? [e.params?.allowedValue]
        : e.keyword === 'enum' && Array.isArray(e.params?.allowedValues)
          ? e.params.allowedValues
          : [],
  );
}

/**
 * One entry per offending field: a `required` error naming several missing properties becomes one
 * `<field> is required` each, and repeats (a field failing several keywords) are dropped.
 */
function violationsOf(part: string | undefined, errors: readonly SchemaError[]): Violation[] {
  const out: Violation[] = [];
  const seen = new Set<string>();
  for (const error of errors) {
    // TypeBox names each unknown field ("schema is false" at its path), then all of them at the object's.
    if (error.keyword === 'additionalProperties') continue;
    const missing = error.params?.requiredProperties ?? error.params?.missingProperty;
    const names = Array.isArray(missing) ? missing.map(String) : typeof missing === 'string' ? [missing] : [];
    const entries =
      names.length > 0
        ? names.map((name) => ({ path: fieldPath(part, error.instancePath, name), message: 'is required' }))
        : [{ path: fieldPath(part, error.instancePath), message: messageOf(error, errors) }];
    for (const entry of entries) {
      if (seen.has(entry.path)) continue;
      seen.add(entry.path);
      out.push(entry);
    }
  }
  return out;
}

function messageOf(error: SchemaError, errors: readonly SchemaError[]): string {
  if (error.keyword === 'boolean' && error.schemaPath?.endsWith('additionalProperties')) return UNKNOWN_FIELD;
  const allowed = error.keyword === 'const' || error.keyword === 'enum' ? allowedValuesAt(errors, error.instancePath) : [];
  if (allowed.length > 0) return `must be one of ${[...new Set(allowed.map((v) => JSON.stringify(v)))].join(', ')}`;
  return error.message ?? 'is invalid';
}

function fieldPath(part: string | undefined, instancePath: string | undefined, property?: string): string {
  const segments = (instancePath ?? '').split('/').filter(Boolean);
  if (property !== undefined) segments.push(property);
  const path = segments.join('.');
  return part && part !== 'body' ? `${part}${path ? '.' + path : ''}` : path || (part ?? 'body');
}
