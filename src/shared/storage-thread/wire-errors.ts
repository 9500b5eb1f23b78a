import { ConcurrencyError, OverloadedError } from '../event-store/event-store.js';
import {
  ConflictError,
  DomainError,
  ForbiddenError,
  NotFoundError,
  UnauthorizedError,
  UnavailableError,
  ValidationError,
  type Violation,
} from '../errors.js';

/** An error as it crosses between threads: structured clone keeps neither classes nor their fields. */
export interface WireError {
  readonly kind: 'validation' | 'not-found' | 'conflict' | 'unavailable' | 'unauthorized' | 'forbidden' | 'other';
  readonly code?: string;
  readonly message: string;
  readonly violations?: readonly Violation[];
  readonly retryAfterSeconds?: number;
  readonly stack?: string;
}

export function toWire(error: unknown): WireError {
  if (!(error instanceof Error)) return { kind: 'other', message: String(error) };
  const base = { message: error.message, stack: error.stack };
  if (error instanceof ValidationError) return { ...base, kind: 'validation', code: error.code, violations: error.violations };
  if (error instanceof NotFoundError) return { ...base, kind: 'not-found', code: error.code };
  if (error instanceof ConflictError) return { ...base, kind: 'conflict', code: error.code };
  if (error instanceof UnavailableError)
    return { ...base, kind: 'unavailable', code: error.code, retryAfterSeconds: error.retryAfterSeconds };
  if (error instanceof UnauthorizedError) return { ...base, kind: 'unauthorized' };
  if (error instanceof ForbiddenError) return { ...base, kind: 'forbidden' };
  if (error instanceof DomainError) return { ...base, kind: 'other', code: error.code };
  return { ...base, kind: 'other' };
}

/** The same kind of error on this side, so the HTTP edge maps it as if it had been thrown here. */
export function fromWire(wire: WireError): Error {
  const code = wire.code ?? 'internal';
  const error = ((): Error => {
    switch (wire.kind) {
      case 'validation':
        return new ValidationError(code, wire.message, wire.violations ?? []);
      case 'not-found':
        return new NotFoundError(code, wire.message);
      case 'conflict':
        return code === 'event-store.concurrency'
          ? Object.assign(new ConcurrencyError('', 'any', 0), { message: wire.message })
          : new ConflictError(code, wire.message);
      case 'unavailable':
        return code === 'event-store.overloaded'
          ? Object.assign(new OverloadedError(0), { message: wire.message })
          : new UnavailableError(code, wire.message, wire.retryAfterSeconds ?? 1);
      case 'unauthorized':
        return new UnauthorizedError(wire.message);
      case 'forbidden':
        return new ForbiddenError(wire.message);
      case 'other':
        return new Error(wire.message);
    }
  })();
  if (wire.stack)
    error.stack = `${error.name}: ${wire.message}\n    (in the storage thread)\n${wire.stack.split('\n').slice(1).join('\n')}`;
  return error;
}
