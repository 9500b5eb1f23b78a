import { AggregatorRegistry } from 'prom-client';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { UnauthorizedError } from '../../shared/errors.js';
import { digestOf, secretMatches } from '../../shared/secrets.js';
import type { IntakeMetrics } from './metrics.js';

function countResponse(metrics: IntakeMetrics, request: FastifyRequest, reply: FastifyReply): void {
  // The route template keeps the label set small; a 404 from no route at all has none.
  const labels = { route: request.routeOptions.url ?? 'unmatched', method: request.method, status: String(reply.statusCode) };
  metrics.httpRequests.inc(labels);
  metrics.httpRequestDuration.observe(labels, reply.elapsedTime / 1000);
}

/**
 * Counts an answer Fastify gives before routing (a malformed URL, a path parameter too long), which
 * the hooks never see: a flood of them was missing from the request metrics.
 */
export function countUnrouted(metrics: IntakeMetrics, request: FastifyRequest, reply: FastifyReply): void {
  reply.raw.once('finish', () => countResponse(metrics, request, reply));
}

/**
 * Counts and times every response, and serves `GET /metrics`. Call it on the root instance (not
 * through `register`, whose encapsulation would limit the hook to its own routes), before `ready`.
 */
export function registerHttpMetrics(app: FastifyInstance, metrics: IntakeMetrics, token?: string): void {
  const tokenDigest = token === undefined ? undefined : digestOf(token);
  // Scrapes asked for while one is being made share it: each takes 25-30 ms of this thread and a
  // round trip to the storage thread, and /metrics needs no token by default.
  let inFlight: Promise<string> | undefined;
  const scrape = () =>
    (inFlight ??= exposition(metrics).finally(() => {
      inFlight = undefined;
    }));
  app.addHook('onResponse', async (request, reply) => countResponse(metrics, request, reply));

  app.get(
    '/metrics',
    {
      schema: {
        tags: ['operations'],
        summary: 'Prometheus metrics of this process',
        description:
          'Prometheus text exposition format. **No token needed** unless `METRICS_TOKEN` is set, in which case the ' +
          'scraper sends it as `Authorization: Bearer <METRICS_TOKEN>` (the admin token is not accepted here). Without ' +
          'it, keep the port off the public internet or filter this path at the proxy. Includes ' +
          'HTTP requests and latency by route and status, events appended, group-commit batch sizes, subscriber ' +
          'lag and parked events, deliveries by outcome, and the Node.js process metrics.',
        security: [],
        response: { 200: { description: 'Metrics', content: { 'text/plain': { schema: Type.String() } } }, 401: Type.Ref('Problem') },
      },
    },
    async (request, reply) => {
      if (tokenDigest) {
        const presented = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '')?.[1];
        if (!presented || !secretMatches(presented, tokenDigest)) {
          throw new UnauthorizedError('METRICS_TOKEN is set: send it as "Authorization: Bearer <token>"');
        }
      }
      return reply.type(metrics.registry.contentType).send(await scrape());
    },
  );
}

/** This thread's metrics, summed with those another thread of the process keeps (same names add up). */
async function exposition(metrics: IntakeMetrics): Promise<string> {
  if (!metrics.elsewhere) return metrics.registry.metrics();
  // The other thread's part may not come (its thread refusing work): this thread's still tells what it knows.
  const [here, there] = await Promise.all([metrics.registry.getMetricsAsJSON(), metrics.elsewhere().catch(() => [])]);
  return AggregatorRegistry.aggregate([here, there]).metrics();
}
