import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { Format } from 'typebox/format';
import { NotFoundError, UnavailableError, ValidationError } from '../../shared/errors.js';
import { uuidV7 } from '../../shared/ids.js';
import type { TrustProxy } from '../config.js';
import { authenticate, type WriteKeyVerifier } from '../../shared/http/auth.js';
import { registerDashboardRoutes } from '../metrics/dashboard-routes.js';
import { countUnrouted, registerHttpMetrics } from '../metrics/http-metrics.js';
import type { IntakeMetrics } from '../metrics/metrics.js';
import { registerDocsRoutes, registerOpenApi } from './docs.js';
import { answerClientError } from './client-errors.js';
import { drainConnections } from './drain-connections.js';
import { errorLogSummary } from './error-log-summary.js';
import { registerJsonLimits } from '../../shared/http/json-limits.js';
import { sendProblem } from './problem.js';
import { strictParametersCompiler } from '../../shared/http/strict-parameters.js';
import { trackAllowedMethods } from './allowed-methods.js';
import { loggableUrl } from './loggable-url.js';
import { limitPipelining } from './pipelining.js';
import { ProblemSchema } from '../../shared/http/schemas.js';
import type { HttpContext } from '../../shared/http/http-context.js';

export type { HttpContext };

export type CheckStatus = 'ok' | 'degraded' | 'down';
export type ReadinessCheck = () => Promise<Record<string, { status: CheckStatus; detail?: string }>>;

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface HttpServerOptions {
  readonly logger: FastifyBaseLogger;
  /** Contexts switched off here (INTAKE_DISABLE), with the paths they answer: a request there is told so. */
  readonly switchedOff?: ReadonlyArray<{ readonly name: string; readonly paths: readonly string[] }>;
  readonly version: string;
  readonly bodyLimitBytes: number;
  /** How long a client may take to send a whole request (30 s by default). */
  readonly requestTimeoutMs?: number;
  /** MAX_CONNECTIONS: open connections beyond which a new one is closed at once (10,000 by default). */
  readonly maxConnections?: number;
  /** MAX_JSON_DEPTH: how deep a JSON body (or each event of a batch) may nest; 64 by default. */
  readonly maxJsonDepth?: number;
  /** MAX_JSON_VALUES: how many values a JSON body (or each event of a batch) may hold; 20,000 by default. */
  readonly maxJsonValues?: number;
  readonly adminDigest: Buffer;
  /** Resolves write keys; without it only the admin token is accepted. */
  readonly verifyWriteKey?: WriteKeyVerifier;
  /** Request metrics and GET /metrics; without it, neither. */
  readonly metrics?: IntakeMetrics;
  /** Protects GET /metrics when set (METRICS_TOKEN); the scrape is public otherwise. */
  readonly metricsToken?: string;
  readonly readiness: ReadinessCheck;
  /**
   * Why writes are refused for now (503), or undefined: an embedded server on PostgreSQL that lost the
   * lock on its schema takes no writes, since another server may hold it meanwhile.
   */
  readonly writesRefused?: () => Error | undefined;
  /** How long readiness waits for its checks before it answers "not ready" (2 s by default). */
  readonly readinessDeadlineMs?: number;
  /**
   * Why checks that are late may be merely queued behind the load (storage still answering), if so:
   * readiness then answers ready and degraded, so a burst does not take every replica out of service.
   */
  readonly saturation?: () => string | undefined;
  /** Each bounded context's HTTP adapter; all but the `public` ones sit behind the admin token. */
  readonly contexts: readonly HttpContext[];
  /** TRUST_PROXY: whose X-Forwarded-For, -Proto and -Host tell the client's address, protocol and host. */
  readonly trustProxy?: TrustProxy;
}

const CORRELATION_ID = /^[\w.:@/+=-]{1,128}$/;
const READINESS_DEADLINE_MS = 2000;

/**
 * The checks, or "down" when they do not answer in time: they ask the storage thread and the
 * dependencies, and one that is stalled (an event loop held by some input, a hung connection) would
 * otherwise hold the probe until it recovered and then report ready.
 */
async function checksWithin(
  readiness: ReadinessCheck,
  deadlineMs: number,
  saturation: () => string | undefined = () => undefined,
): ReturnType<ReadinessCheck> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<Awaited<ReturnType<ReadinessCheck>>>((resolve) => {
    timer = setTimeout(() => {
      const busy = saturation();
      resolve({
        readiness: busy
          ? { status: 'degraded', detail: `the checks did not answer within ${deadlineMs} ms, queued behind the load: ${busy}` }
          : { status: 'down', detail: `the checks did not answer within ${deadlineMs} ms: storage or a dependency is stalled` },
      });
    }, deadlineMs);
  });
  // A check that fails says so in the answer: thrown, it became a 500 whose body fit no readiness schema.
  const checked = readiness().catch((error: unknown) => ({
    readiness: { status: 'down' as const, detail: `the checks failed: ${(error as Error).message}` },
  }));
  try {
    return await Promise.race([checked, late]);
  } finally {
    clearTimeout(timer);
  }
}
const MAX_PARAM_LENGTH = 4096;

// RFC 3339 allows date-times that JavaScript's Date cannot hold: a leap second (23:59:60) and an
// RFC 9557 suffix (`[Europe/Paris]`). Routes read their date-time parameters with `new Date`, so the
// edge refuses those with a 400 rather than letting them fail later as a 500.
const isRfc3339DateTime = Format.Get('date-time') ?? (() => true);
Format.Set('date-time', (value) => isRfc3339DateTime(value) && !Number.isNaN(Date.parse(value)));

/**
 * The router refuses a path with bad percent-encoding, but the query parser takes such a value as its
 * raw text: `?payload.s=%E9` (Latin-1) would filter by the text "%E9" and answer an empty page.
 */
function badQueryEncoding(url: string): ValidationError | undefined {
  const query = url.indexOf('?');
  if (query < 0) return undefined;
  try {
    decodeURIComponent(url.slice(query + 1));
    return undefined;
  } catch {
    return new ValidationError(
      'request.bad-url',
      'the query string holds a % not followed by two hex digits, or bytes that are not UTF-8',
      [{ path: 'url', message: 'bad percent-encoding in the query string' }],
    );
  }
}

export async function buildHttpServer(options: HttpServerOptions): Promise<FastifyInstance> {
  const expectedErrors = errorLogSummary(options.logger);
  const requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  const app = Fastify({
    loggerInstance: options.logger,
    bodyLimit: options.bodyLimitBytes,
    // Without it a client that trickles a body (or only its headers' end) holds its connection and
    // the buffered bytes for as long as it likes; a few thousand such clients take every descriptor.
    requestTimeout: requestTimeoutMs,
    // Node looks for late requests this often (every 30 s by default, as long as the timeout itself),
    // and only when the headers' own deadline is not the later one.
    http: {
      connectionsCheckingInterval: Math.max(50, Math.floor(requestTimeoutMs / 4)),
      headersTimeout: Math.min(60_000, requestTimeoutMs),
    },
    // Per-request lines are logged at debug level by the onResponse hook below: they cost throughput at info.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'correlation_id' }),
    // The correlation id doubles as request id: logs, events and the response all carry the same one.
    requestIdHeader: false,
    genReqId: (request) => {
      const given = request.headers['x-correlation-id'];
      return typeof given === 'string' && CORRELATION_ID.test(given) ? given : uuidV7();
    },
    // A number of hops, as a function: Fastify's types take no number.
    trustProxy: typeof options.trustProxy === 'number' ? trustHops(options.trustProxy) : (options.trustProxy ?? false),
    // Long enough for any id a route accepts, percent-encoded; longer ones get a 414 problem.
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // Errors before routing (bad URL encoding, a path parameter too long) and from Node's HTTP parser
    // (Content-Length mismatch) answer problem+json like everything else.
    frameworkErrors: (error, request, reply) => {
      if (options.metrics) countUnrouted(options.metrics, request, reply);
      // The hooks that echo it do not run for a request refused before routing.
      reply.header('x-correlation-id', request.id);
      return sendProblem(error, request, reply, expectedErrors);
    },
    clientErrorHandler: answerClientError,
    // Answered below as every other 503 is (problem+json, Retry-After), not with Fastify's bare body.
    return503OnClosing: false,
  }).setValidatorCompiler(strictParametersCompiler);
  let closing = false;
  app.addHook('onRequest', async (_request, reply) => {
    if (!closing) return;
    reply.header('connection', 'close');
    throw new UnavailableError(
      'server.closing',
      'this server is stopping: send the request again, to another server or to this one once it is back',
    );
  });
  // Answers to the requests in flight at the close end their connections, and say so: one answered as
  // kept alive was closed by the drain all the same, and a client's next request on it met a reset.
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });
  // Only JSON is accepted: a text/plain body is refused with 415 instead of failing schema validation.
  app.removeContentTypeParser('text/plain');
  registerJsonLimits(app, { maxDepth: options.maxJsonDepth ?? 64, maxValues: options.maxJsonValues ?? 20_000 });

  limitConnections(app, options.maxConnections ?? 10_000);
  limitPipelining(app);
  app.addHook('preClose', (done) => {
    closing = true;
    drainConnections(app.server);
    done();
  });
  app.addHook('onClose', async () => expectedErrors.close());
  app.setErrorHandler((error, request, reply) => sendProblem(error, request, reply, expectedErrors));
  const allowedMethods = trackAllowedMethods(app, { maxParamLength: MAX_PARAM_LENGTH });
  // The context whose path holds the most of this one (attribution's conversions lie under tracking's);
  // `/api/schemasX` lies under none.
  const switchedOffAt = (path: string) => {
    let owner: { name: string; length: number } | undefined;
    for (const { name, paths } of options.switchedOff ?? [])
      for (const prefix of paths)
        if ((path === prefix || path.startsWith(`${prefix}/`)) && prefix.length > (owner?.length ?? 0))
          owner = { name, length: prefix.length };
    return owner?.name;
  };
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '/';
    const allowed = allowedMethods(path);
    // The detail is logged: a write key in the path (a typo of the settings path) is not written there.
    const shown = loggableUrl(path, {});
    // A route that takes this method and still answers "not found" (a file route's missing file) is a 404.
    if (allowed.length === 0 || allowed.includes(request.method)) {
      const off = allowed.length === 0 ? switchedOffAt(path) : undefined;
      const error = off
        ? new NotFoundError(
            'context.disabled',
            `${off} is switched off in this process (INTAKE_DISABLE): nothing answers ${request.method} ${shown}`,
          )
        : new NotFoundError('route.not-found', `no route for ${request.method} ${shown}`);
      return sendProblem(error, request, reply, expectedErrors);
    }
    reply.header('allow', allowed.join(', '));
    const error = new NotFoundError(
      'route.method-not-allowed',
      `${request.method} is not allowed on ${shown}; it allows ${allowed.join(', ')}`,
    );
    return sendProblem(error, request, reply, expectedErrors);
  });
  // A NUL in a path or query parameter (%00) reached SQL, where PostgreSQL refuses it with a 500;
  // bodies are held to the same rule by the JSON limits.
  // A callback hook: it runs on every request, and an async one costs a promise each time.
  const { writesRefused } = options;
  if (writesRefused) {
    app.addHook('onRequest', (request, _reply, done) => {
      const refusal = READS.has(request.method) ? undefined : writesRefused();
      done(refusal);
    });
  }
  app.addHook('onRequest', (request, _reply, done) => {
    if (!request.url.includes('%')) return done();
    if (request.url.includes('%00'))
      return done(
        new ValidationError('request.invalid-unicode', 'the URL holds a NUL character (%00), which is not accepted', [
          { path: 'url', message: 'holds a NUL character (%00)' },
        ]),
      );
    done(badQueryEncoding(request.url));
  });
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-correlation-id', request.id);
  });
  app.addHook('onResponse', async (request, reply) => {
    request.log.debug(
      { method: request.method, url: loggableUrl(request.url, request.params), status: reply.statusCode, ms: reply.elapsedTime },
      'request completed',
    );
  });

  app.addSchema(ProblemSchema);
  for (const schema of options.contexts.flatMap((context) => context.schemas ?? [])) app.addSchema(schema);
  await registerOpenApi(app, options.version);
  // On the root instance (not via register) so its hooks see every route.
  if (options.metrics) registerHttpMetrics(app, options.metrics, options.metricsToken);

  const Health = Type.Object({ status: Type.String() });
  app.get('/health', { schema: { tags: ['operations'], summary: 'Liveness', security: [], response: { 200: Health } } }, async () => ({
    status: 'ok',
  }));

  const deadlineMs = options.readinessDeadlineMs ?? READINESS_DEADLINE_MS;
  const readiness = async (_request: unknown, reply: { status(code: number): unknown }) => {
    const checks = await checksWithin(options.readiness, deadlineMs, options.saturation);
    const ready = Object.values(checks).every((check) => check.status !== 'down');
    reply.status(ready ? 200 : 503);
    return { status: ready ? 'ready' : 'not_ready', checks };
  };
  const readySchema = {
    tags: ['operations'],
    summary: 'Readiness, with the state of the database and other dependencies',
    security: [],
    response: {
      '2xx': Type.Object({
        status: Type.String(),
        checks: Type.Record(Type.String(), Type.Object({ status: Type.String(), detail: Type.Optional(Type.String()) })),
      }),
      '5xx': Type.Object({
        status: Type.String(),
        checks: Type.Record(Type.String(), Type.Object({ status: Type.String(), detail: Type.Optional(Type.String()) })),
      }),
    },
  };
  app.get('/health/ready', { schema: readySchema }, readiness);
  app.get('/', { schema: { ...readySchema, summary: 'Readiness, as /health/ready' } }, readiness);

  await registerDocsRoutes(app);
  registerDashboardRoutes(app);

  await app.register(async (secured) => {
    // Set by `authenticate` on every request; Fastify wants reference-type decorations to start as null.
    secured.decorateRequest('principal', null);
    secured.addHook('onRequest', authenticate(options.adminDigest, options.verifyWriteKey));
    for (const context of options.contexts.filter((c) => !c.public)) await secured.register(context.routes);
  });
  for (const context of options.contexts.filter((c) => c.public)) await app.register(context.routes);

  return app;
}

/**
 * Caps the open connections: each holds a descriptor and its buffers, and past the process's limit of
 * descriptors every accept fails, and so do the database's and the log's files. A connection beyond the
 * cap is closed at once (the client may retry); the drops are logged at most once a minute.
 */
function limitConnections(app: FastifyInstance, maxConnections: number): void {
  app.server.maxConnections = maxConnections;
  let dropped = 0;
  let reported = Number.NEGATIVE_INFINITY;
  app.server.on('drop', () => {
    dropped += 1;
    if (performance.now() - reported < 60_000) return;
    reported = performance.now();
    app.log.warn({ dropped, maxConnections }, `closed new connections beyond MAX_CONNECTIONS (${maxConnections})`);
    dropped = 0;
  });
}

/** Believes the nearest `hops` addresses: the socket's, then X-Forwarded-For from its right end. */
const trustHops =
  (hops: number) =>
  (_address: string, hop: number): boolean =>
    hop < hops;
