import type { FastifyRequest } from 'fastify';
import { ForbiddenError, UnauthorizedError } from '../errors.js';
import { secretMatches } from '../secrets.js';

/** Who is calling: the admin (everything), or a write key (writing as its own source, nothing else). */
export type Principal = { readonly kind: 'admin' } | { readonly kind: 'write-key'; readonly appId: string; readonly keyId: string };

export type WriteKeyVerifier = (token: string) => Promise<{ appId: string; keyId: string } | undefined>;

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by `authenticate` before any context route runs. */
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    /**
     * `write`: a write key may call this route (as its own source); `public`: no token at all (health
     * checks). The default is admin only.
     */
    access?: 'admin' | 'write' | 'public';
  }
}

const ADMIN: Principal = { kind: 'admin' };

/** onRequest hook of every context route: resolves the bearer token to a principal, in constant time per secret. */
export function authenticate(adminDigest: Buffer, verifyWriteKey: WriteKeyVerifier | undefined) {
  return async (request: FastifyRequest): Promise<void> => {
    if (request.routeOptions.config.access === 'public') return;
    const header = request.headers.authorization;
    if (!header) throw new UnauthorizedError('missing Authorization: Bearer <token> header');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match?.[1]) throw new UnauthorizedError('Authorization header must be "Bearer <token>"');
    const token = match[1];
    if (secretMatches(token, adminDigest)) {
      request.principal = ADMIN;
      return;
    }
    const key = verifyWriteKey && (await verifyWriteKey(token));
    if (!key) throw new UnauthorizedError('the token is not valid');
    if (request.routeOptions.config.access !== 'write')
      throw new ForbiddenError('a write key can only send events; this endpoint needs the admin token');
    request.principal = { kind: 'write-key', ...key };
  };
}

/** A write key writes only as its own source. */
export function assertMayWriteAs(principal: Principal | null, appId: string): void {
  if (!principal) throw new UnauthorizedError('not authenticated');
  if (principal.kind === 'write-key' && principal.appId !== appId) {
    throw new ForbiddenError(`this write key belongs to application ${principal.appId} and cannot write as ${appId}`);
  }
}

export const keyIdOf = (principal: Principal | null): string | undefined => (principal?.kind === 'write-key' ? principal.keyId : undefined);
