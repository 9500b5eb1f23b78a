import { OPTIONAL_BODY } from '../../shared/http/schemas.js';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';

/** Registers the OpenAPI 3.1 generator; must run before any route is added. */
export async function registerOpenApi(app: FastifyInstance, version: string): Promise<void> {
  await app.register(swagger, {
    // Keep the schemas' own $id as component names instead of def-0, def-1...
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Intake',
        version,
        description:
          'Durable JSON ingestion: an append-only event store with validation, processing, query views, routing and attribution.',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'the admin token, or a write key where a route takes one' },
          writeKey: { type: 'http', scheme: 'basic', description: 'a write key as the user name, with an empty password' },
        },
      },
      security: [{ bearer: [] }],
    },
    transformObject: (document) => {
      if (!('openapiObject' in document)) return document.swaggerObject;
      // Both change the document in place.
      withReplayHeader(withOptionalBodies(withEdgeProblems(withProblemMediaType(document.openapiObject as OpenApiDocument))));
      return document.openapiObject;
    },
  });
}

interface Operation {
  responses?: Record<string, { description?: string; content?: Record<string, unknown>; headers?: Record<string, unknown> }>;
  requestBody?: { required?: boolean };
  [OPTIONAL_BODY]?: boolean;
  parameters?: Array<{ in?: string; name?: string }>;
  security?: unknown[];
}
type OpenApiDocument = { paths?: Record<string, Record<string, Operation>>; security?: unknown[] };

/**
 * Every route of one event that takes an `Idempotency-Key` says, on its success answers, how a retry's
 * answer is marked. A batch's retry is told event by event, in its receipts (`duplicate`), not by a header.
 */
function withReplayHeader<T extends OpenApiDocument>(document: T): T {
  for (const [path, operations] of Object.entries(document.paths ?? {})) {
    if (path.endsWith('/batch')) continue;
    for (const operation of Object.values(operations)) {
      if (!operation.parameters?.some((parameter) => parameter.in === 'header' && parameter.name === 'idempotency-key')) continue;
      for (const [status, response] of Object.entries(operation.responses ?? {})) {
        if (!status.startsWith('2')) continue;
        response.headers = {
          ...response.headers,
          'Idempotent-Replayed': {
            description: '`true` on the answer to a retry under the same Idempotency-Key: the first result, nothing stored again',
            schema: { type: 'string', enum: ['true'] },
          },
        };
      }
    }
  }
  return document;
}

/** A body the route marks optional is not required, whatever the generator assumes of a declared one. */
function withOptionalBodies<T extends OpenApiDocument>(document: T): T {
  for (const operations of Object.values(document.paths ?? {})) {
    for (const operation of Object.values(operations)) {
      if (!operation[OPTIONAL_BODY]) continue;
      delete operation[OPTIONAL_BODY];
      if (operation.requestBody) operation.requestBody.required = false;
    }
  }
  return document;
}

const BODY_METHODS = new Set(['post', 'put', 'patch', 'delete']);

const PROBLEM_SCHEMA = '#/components/schemas/Problem';
const PROBLEM = { content: { 'application/problem+json': { schema: { $ref: PROBLEM_SCHEMA } } } };

/**
 * What the HTTP edge answers on every route of a kind, whatever the route declares: 403 where a
 * credential is needed (a valid one that may not do this: a write key on a management route, or one
 * of another application), 414 where a path parameter is longer than any id, 415 where a JSON route
 * gets a body of another media type.
 */
function withEdgeProblems<T extends OpenApiDocument>(document: T): T {
  const add = (operation: Operation, status: string, description: string) => {
    operation.responses ??= {};
    operation.responses[status] ??= { description, ...PROBLEM };
  };
  for (const operations of Object.values(document.paths ?? {})) {
    for (const [method, operation] of Object.entries(operations)) {
      if ((operation.security ?? document.security ?? []).length > 0)
        add(
          operation,
          '403',
          'the credential is valid but may not do this (a write key on a management route, or one of another application)',
        );
      if (operation.parameters?.some((parameter) => parameter.in === 'path')) add(operation, '414', 'a path parameter longer than any id');
      // The tracking API takes any label (its JSON arrives as text/plain and form types too).
      const media = Object.keys((operation.requestBody as { content?: object } | undefined)?.content ?? {});
      if (media.length === 1 && media[0] === 'application/json') add(operation, '415', 'a body of another media type than JSON');
      // A route that takes no body still parses one sent, as JSON only.
      if (media.length === 0 && BODY_METHODS.has(method)) add(operation, '415', 'a body (none is needed) of another media type than JSON');
    }
  }
  return document;
}

/**
 * Every error is answered as `application/problem+json` (RFC 9457), whatever route it comes from:
 * the document says so too, instead of the `application/json` the generator writes for any schema.
 * A health check's 503 is its status document, as JSON.
 */
function withProblemMediaType<T extends OpenApiDocument>(document: T): T {
  for (const operations of Object.values(document.paths ?? {})) {
    for (const operation of Object.values(operations)) {
      for (const [status, response] of Object.entries(operation.responses ?? {})) {
        const json = response.content?.['application/json'] as { schema?: { $ref?: string } } | undefined;
        if (!/^[45]\d\d$/.test(status) || json?.schema?.$ref !== PROBLEM_SCHEMA || !response.content) continue;
        delete response.content['application/json'];
        response.content['application/problem+json'] = json;
      }
    }
  }
  return document;
}

// The build copies ReDoc's bundle here (scripts/vendor-assets.mjs); from the sources, the package itself serves.
const VENDORED_REDOC = fileURLToPath(new URL('../../../public/vendor/redoc.standalone.js', import.meta.url));

function redocBundlePath(): string {
  if (existsSync(VENDORED_REDOC)) return VENDORED_REDOC;
  return createRequire(import.meta.url).resolve('redoc/bundles/redoc.standalone.js');
}

const REDOC_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>Intake API</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,"></head>
<body><redoc spec-url="/openapi.json"></redoc>
<script src="/redoc/redoc.standalone.js"></script></body></html>`;

// ReDoc's menu footer shows Redocly's logo from their CDN; the policy keeps the page to this origin
// (the vendored bundle shows an empty image of its own instead: scripts/vendor-assets.mjs). styled-components needs inline styles, the search index a blob worker.
const REDOC_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; " +
  "connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * Swagger UI at /docs, ReDoc at /redoc and the JSON document at /openapi.json: public, no token needed.
 * Both viewers are served by this process, so the documentation works without internet access.
 */
/** As on the dashboard: no type sniffing of what is served, and no page address sent on to others. */
const DOCS_HEADERS = { 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' };

export async function registerDocsRoutes(app: FastifyInstance): Promise<void> {
  // The plugin's policy with the hashes of the page's inline scripts, kept to this origin: no badge
  // from swagger.io, no https upgrade (which breaks the page served over plain http), and the inline
  // styles Swagger UI sets on its elements.
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiHooks: {
      onRequest: (_request, reply, done) => {
        void reply.headers(DOCS_HEADERS);
        done();
      },
    },
    staticCSP: true,
    transformStaticCSP: (policy) =>
      policy
        .replace(' validator.swagger.io', '')
        .replace(/ upgrade-insecure-requests;?/, '')
        .replace("style-src 'self' https:", "style-src 'self' 'unsafe-inline'")
        .replace("frame-ancestors 'self'", "frame-ancestors 'none'"),
  });
  // Both answers are made once: written out per request, the 200 KB document and the 1.1 MB bundle
  // cost every caller's time and memory again.
  let document: string | undefined;
  let redocBundle: Promise<Buffer> | undefined;
  app.get('/openapi.json', { schema: { hide: true } }, async (_request, reply) =>
    reply
      .type('application/json; charset=utf-8')
      .headers(DOCS_HEADERS)
      .send((document ??= JSON.stringify(app.swagger()))),
  );
  app.get('/redoc', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/html; charset=utf-8').headers(DOCS_HEADERS).header('content-security-policy', REDOC_POLICY).send(REDOC_PAGE),
  );
  app.get('/redoc/redoc.standalone.js', { schema: { hide: true } }, async (_request, reply) =>
    reply
      .type('text/javascript; charset=utf-8')
      .headers(DOCS_HEADERS)
      .header('cache-control', 'public, max-age=86400')
      .send(
        await (redocBundle ??= readFile(redocBundlePath()).catch((error: unknown) => {
          redocBundle = undefined;
          throw error;
        })),
      ),
  );
}
