import FindMyWay, { type HTTPMethod } from 'find-my-way';
import type { FastifyInstance } from 'fastify';

const METHODS: readonly HTTPMethod[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/**
 * The methods a path has routes for, so that a request with another method gets 405 and an `Allow`
 * header (RFC 9110, 15.5.6) instead of the 404 Fastify's router answers for any miss. Fastify's own
 * route lookups take a route's pattern, not a request's path, so the routes are mirrored into a router
 * of the same library as they are added. Register before any route.
 */
export function trackAllowedMethods(app: FastifyInstance, options: { readonly maxParamLength: number }): (path: string) => string[] {
  const mirror = FindMyWay({ maxParamLength: options.maxParamLength });
  const noop = () => undefined;
  app.addHook('onRoute', (route) => {
    const path = route.url ?? route.path;
    for (const method of [route.method].flat() as HTTPMethod[]) if (!mirror.hasRoute(method, path)) mirror.on(method, path, noop);
  });
  return (path) => METHODS.filter((method) => mirror.find(method, path) !== null);
}
