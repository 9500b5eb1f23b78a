import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** The origins an application accepts browsers from; undefined (or null) means any origin. */
export type AllowedOrigins = (appId: string) => Promise<readonly string[] | undefined>;

const ALLOWED_HEADERS = 'Content-Type, Authorization, X-Retry-Count, Content-Encoding';
/** What browser code may read of an answer: the correlation id to quote in a support request. */
const EXPOSED_HEADERS = 'X-Correlation-ID, Retry-After';

/**
 * CORS for the tracking API: a write key is public by design, so any origin may send by default.
 * The preflight carries no credentials, so it cannot know the application: it is answered for any
 * origin, and an application's own list is enforced on the request itself.
 */
export function corsHooks(scope: FastifyInstance, paths: readonly string[]): void {
  scope.addHook('onRequest', async (request, reply) => {
    // Also without an Origin: a shared cache must not hand a browser the answer a server got.
    reply.header('vary', 'Origin');
    const origin = request.headers.origin;
    if (typeof origin !== 'string') return;
    reply.header('access-control-allow-origin', origin);
    // Browser SDKs may send with credentials (XHR withCredentials), which a browser refuses without this.
    // Nothing here reads cookies: a request is authorised by its write key alone, so credentials grant nothing.
    reply.header('access-control-allow-credentials', 'true');
    reply.header('access-control-expose-headers', EXPOSED_HEADERS);
  });
  const preflight = async (request: FastifyRequest, reply: FastifyReply) => {
    const requested = request.headers['access-control-request-headers'];
    reply.header('access-control-allow-methods', 'POST, GET, OPTIONS');
    reply.header('access-control-allow-headers', typeof requested === 'string' && requested.length <= 1024 ? requested : ALLOWED_HEADERS);
    reply.header('access-control-max-age', '86400');
    return reply.status(204).send();
  };
  // Routes are global in Fastify: the preflight answers the tracking API's own paths only, each by name
  // (a wildcard made every unknown /v1/… path a 405 instead of a 404).
  for (const path of paths) scope.options(path, { schema: { hide: true } }, preflight);
}
