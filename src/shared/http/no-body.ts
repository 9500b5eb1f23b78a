import type { FastifyRequest } from 'fastify';
import { ValidationError } from '../errors.js';
import { unknownFields } from '../contracts/known-fields.js';

/**
 * For an endpoint that documents no body: none, `null` or `{}` (what clients send by habit) pass; a
 * field is refused as every other body's unknown fields are, rather than ignored without a word.
 */
export async function refuseBody(request: FastifyRequest): Promise<void> {
  const body: unknown = request.body;
  if (body === undefined || body === null) return;
  if (typeof body === 'object' && !Array.isArray(body)) {
    const unknown = unknownFields(body, []);
    if (unknown.length === 0) return;
    throw new ValidationError('request.invalid', unknown.map((v) => `${v.path} ${v.message}`).join('; '), unknown);
  }
  throw new ValidationError('request.invalid', 'this endpoint takes no body', [{ path: 'body', message: 'this endpoint takes no body' }]);
}
