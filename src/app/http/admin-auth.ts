import type { FastifyRequest } from 'fastify';
import { UnauthorizedError } from '../../shared/errors.js';
import { secretMatches } from '../../shared/secrets.js';

/** onRequest hook: the admin bearer token, compared in constant time against its stored digest. */
export function requireAdmin(adminDigest: Buffer) {
  return async (request: FastifyRequest): Promise<void> => {
    const header = request.headers.authorization;
    if (!header) throw new UnauthorizedError('missing Authorization: Bearer <token> header');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match?.[1]) throw new UnauthorizedError('Authorization header must be "Bearer <token>"');
    if (!secretMatches(match[1], adminDigest)) throw new UnauthorizedError('the token is not valid');
  };
}
