/**
 * Domain errors carry a stable `code`; only the HTTP edge maps codes to statuses
 * (see app/http/problem.ts). Expected failures are typed, never string-matched.
 */
export interface Violation {
  readonly path: string;
  readonly message: string;
}

export abstract class DomainError extends Error {
  abstract readonly code: string;
  override get name(): string {
    return this.constructor.name;
  }
}

export class ValidationError extends DomainError {
  readonly code: string;
  readonly violations: readonly Violation[];
  constructor(code: string, message: string, violations: readonly Violation[] = []) {
    super(message);
    this.code = code;
    this.violations = violations;
  }
}

export class NotFoundError extends DomainError {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export class ConflictError extends DomainError {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** The service cannot take the request now; the client should retry after `retryAfterSeconds`. */
export class UnavailableError extends DomainError {
  readonly code: string;
  readonly retryAfterSeconds: number;
  constructor(code: string, message: string, retryAfterSeconds = 1) {
    super(message);
    this.code = code;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export class UnauthorizedError extends DomainError {
  readonly code = 'auth.unauthorized';
}

export class ForbiddenError extends DomainError {
  readonly code = 'auth.forbidden';
}

/**
 * Runs every field's parse and throws one ValidationError listing every violation, so a client
 * fixes its request in one round trip instead of one field at a time.
 */
export function parseAll<T extends object>(code: string, what: string, parsers: { readonly [K in keyof T]: () => T[K] }): T {
  const parsed: Partial<T> = {};
  const violations: Violation[] = [];
  for (const key of Object.keys(parsers) as Array<keyof T>) {
    try {
      parsed[key] = parsers[key]();
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      violations.push(...error.violations);
    }
  }
  if (violations.length > 0) {
    throw new ValidationError(code, `invalid ${what}: ${violations.map((v) => `${v.path} ${v.message}`).join('; ')}`, violations);
  }
  return parsed as T;
}

/** What went wrong, in words: an Error's message, or the thrown value itself. */
export const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));
