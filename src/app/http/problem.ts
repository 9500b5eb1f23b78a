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
  'request.unsupported-media-type': { status: 415, title: 'Unsupported media type' },
  'request.malformed-json': { status: 400, title: 'Malformed JSON' },
  'request.invalid': { status: 400, title: 'Invalid request' },
  'request.unsupported-encoding': { status: 415, title: 'Unsupported content encoding' },
  'analytics.message-too-large': { status: 413, title: 'Message too large' },
  'route.not-found': { status: 404, title: 'Not found' },
  'event-store.overloaded': { status: 503, title: 'Overloaded' },
  'event-store.concurrency': { status: 409, title: 'Conflict' },
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
};

// Signs that the database or broker cannot be reached (socket errors, PostgreSQL admin shutdown and
// connection classes, pool timeouts): the request may succeed later, so 503 rather than 500.
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  '57P01',
  '57P02',
  '57P03',
  '53300',
  '08000',
  '08001',
  '08003',
  '08006',
]);
const UNAVAILABLE_MESSAGES = /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/;

export function isUnavailable(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) || (typeof message === 'string' && UNAVAILABLE_MESSAGES.test(message));
}

export function problemFor(error: unknown, instance: string): Problem {
  if (!(error instanceof DomainError) && isUnavailable(error)) {
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
    const errors = fastifyError.validation?.map((v) => ({
      path: fieldPath(fastifyError.validationContext, v.instancePath, v.params),
      message: v.message ?? 'is invalid',
    }));
    const detail = errors?.length ? errors.map((e) => `${e.path} ${e.message}`).join('; ') : (fastifyError.message ?? 'bad request');
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

export async function sendProblem(error: unknown, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const problem = problemFor(error, request.url);
  if (problem.status === 503) {
    request.log.warn({ err: error }, 'dependency unavailable');
    reply.header('retry-after', String(error instanceof UnavailableError ? error.retryAfterSeconds : 1));
  } else if (problem.status >= 500) {
    request.log.error({ err: error }, 'request failed');
  }
  if (error instanceof UnauthorizedError) reply.header('www-authenticate', 'Bearer');
  await reply.status(problem.status).type('application/problem+json').send(problem);
}

function typeOf(code: string): string {
  return `urn:intake:problem:${code}`;
}

function fieldPath(part: string | undefined, instancePath: string | undefined, params: Record<string, unknown> | undefined): string {
  const segments = (instancePath ?? '').split('/').filter(Boolean);
  const missing = params?.requiredProperties ?? params?.missingProperty;
  if (Array.isArray(missing)) segments.push(String(missing[0]));
  else if (typeof missing === 'string') segments.push(missing);
  const path = segments.join('.');
  return part && part !== 'body' ? `${part}${path ? '.' + path : ''}` : path || (part ?? 'body');
}
