import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { ForbiddenError, UnauthorizedError, ValidationError } from '../../../shared/errors.js';
import type { HttpContext } from '../../../shared/http/http-context.js';
import type { MessageReceipt, MessagesCommand } from '../../application/accept-messages.js';
import type { ResolveWriteKey } from '../../application/ports.js';
import { originAllowed } from '../../application/source-settings.js';
import { MAX_BATCH_MESSAGES, MAX_MESSAGE_BYTES, MESSAGE_ERRORS, type MessageType } from '../../domain/message.js';
import { corsHooks, type AllowedOrigins } from './cors.js';
import { decodeBodyText } from './decode-body.js';
import { checkCharset, RefusedJsonItem } from '../../../shared/http/json-limits.js';
import { errorResponses, JsonObjectSchema, problemRef } from '../../../shared/http/schemas.js';
import { writeKeyFromBody, writeKeyFromHeader } from './write-key.js';

export interface TrackingApiHandlers {
  readonly resolveWriteKey: ResolveWriteKey;
  readonly acceptMessages: (command: MessagesCommand) => Promise<MessageReceipt[]>;
  /** Origins an application lets browsers send from; undefined means any. */
  readonly allowedOrigins?: AllowedOrigins;
  /** Where browsers reach this service: analytics.js is told to send there, whatever Host a request names. */
  readonly publicUrl?: URL;
}

export const MAX_BATCH_BYTES = 500 * 1024;
// Room for the envelope (writeKey, sentAt) around one message of the largest size.
const MAX_SINGLE_BYTES = MAX_MESSAGE_BYTES + 4 * 1024;

/** The single-message endpoints, by their long and short names (browser SDKs use the first letter). */
const SINGLE_ROUTES: ReadonlyArray<readonly [MessageType, string]> = [
  ['track', 't'],
  ['identify', 'i'],
  ['page', 'p'],
  ['screen', 's'],
  ['group', 'g'],
  ['alias', 'a'],
];
/** Batch endpoints: the HTTP API's, historical import, analytics.js's batching `/b`, RudderStack's beacon. */
const BATCH_PATHS = ['/v1/batch', '/v1/import', '/v1/b', '/beacon/v1/batch'];

const ReceiptSchema = Type.Object({
  index: Type.Integer(),
  status: Type.String({ description: 'accepted | duplicate | rejected' }),
  messageId: Type.Optional(Type.String()),
  event_id: Type.Optional(Type.String()),
  code: Type.Optional(Type.String()),
  reason: Type.Optional(Type.String()),
});
const Answer = Type.Object({
  success: Type.Boolean(),
  receipts: Type.Array(ReceiptSchema, { description: 'One per message, in order; SDKs ignore this field' }),
});
/** 401 without a known write key, 403 for a `writeKey` that names another application than the header's. */
// 415: a body declared in a charset other than UTF-8, or an unknown Content-Encoding; 422: every message
// of the request is too costly to route (routing.rules-too-costly).
const responses = { 200: Answer, ...errorResponses, 403: problemRef, 415: problemRef, 422: problemRef };

/**
 * A message as the document describes it. The routes do not check bodies against it: each message is
 * checked by itself (domain/message.ts), so that a bad one is rejected alone, never its batch.
 */
const MessageDoc = Type.Object(
  {
    type: Type.Optional(
      Type.String({ description: 'track, identify, page, screen, group or alias; given by the path on the single-message routes' }),
    ),
    userId: Type.Optional(Type.String()),
    anonymousId: Type.Optional(Type.String({ description: 'userId or anonymousId is required' })),
    event: Type.Optional(Type.String({ description: 'a track message’s name: its event_type' })),
    name: Type.Optional(Type.String({ description: 'a page or screen name' })),
    properties: Type.Optional(Type.Object({}, { additionalProperties: true })),
    traits: Type.Optional(Type.Object({}, { additionalProperties: true })),
    context: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'campaign, page, ip, userAgent…' })),
    groupId: Type.Optional(Type.String()),
    previousId: Type.Optional(Type.String()),
    messageId: Type.Optional(Type.String({ description: 'deduplicates for IDEMPOTENCY_WINDOW_HOURS (24 h by default)' })),
    timestamp: Type.Optional(Type.String({ format: 'date-time' })),
    sentAt: Type.Optional(Type.String({ format: 'date-time', description: 'with timestamp, corrects the sender’s clock skew' })),
    writeKey: Type.Optional(Type.String({ description: 'the write key, when it is not in the Authorization header' })),
  },
  { additionalProperties: true },
);
const BatchDoc = Type.Object(
  {
    batch: Type.Array(MessageDoc, { minItems: 1, maxItems: MAX_BATCH_MESSAGES }),
    sentAt: Type.Optional(Type.String({ format: 'date-time' })),
    context: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'merged into every message’s own' })),
    writeKey: Type.Optional(Type.String()),
  },
  { additionalProperties: true },
);
/** The write key as Basic auth's user name (SDKs' way), or as a Bearer token. */
const security: Array<Record<string, string[]>> = [{ writeKey: [] }, { bearer: [] }];
// JSON however it is labelled: browsers' sendBeacon says text/plain, RudderStack's Node SDK a form type.
const consumes = ['application/json', 'text/plain', 'application/x-www-form-urlencoded'];
/** Bodies are documented, not checked: see MessageDoc. */
const documentedBodyOnly = () => () => true;

/**
 * The Segment / RudderStack HTTP Tracking API. Public routes: the write key (not the admin token)
 * authenticates, and it alone decides the application. Bodies are parsed here, whatever their
 * content type or encoding, because SDKs label JSON in several ways.
 */
export function trackingApiHttp(handlers: TrackingApiHandlers): HttpContext {
  return {
    public: true,
    routes: async (scope) => {
      scope.removeAllContentTypeParsers();
      // Decoded here, then parsed and held to the JSON limits as every other JSON body is.
      scope.addContentTypeParser('*', { parseAs: 'buffer' }, async (request: FastifyRequest, body: Buffer) => {
        checkCharset(headerOf(request, 'content-type'));
        const text = await decodeBodyText(body, headerOf(request, 'content-encoding'), request.routeOptions.bodyLimit ?? MAX_BATCH_BYTES);
        return scope.parseLimitedJson(request, text);
      });
      corsHooks(scope, [
        ...BATCH_PATHS,
        ...SINGLE_ROUTES.flatMap(([type, short]) => [`/v1/${type}`, `/v1/${short}`]),
        '/v1/projects/:writeKey/settings',
      ]);
      const tags = ['tracking API (Segment / RudderStack)'];

      for (const path of BATCH_PATHS) {
        scope.post(
          path,
          {
            // The SDKs' limit, or the server's BODY_LIMIT when that is lower.
            bodyLimit: Math.min(MAX_BATCH_BYTES, scope.initialConfig.bodyLimit ?? MAX_BATCH_BYTES),
            // Each message is held to the JSON limits alone: one too deep or with a lone surrogate is rejected by itself.
            config: { jsonItems: 'batch' },
            validatorCompiler: documentedBodyOnly,
            schema: {
              tags,
              security,
              consumes,
              body: BatchDoc,
              summary: `A batch of messages (${MAX_BATCH_BYTES / 1024} KB and ${MAX_BATCH_MESSAGES} messages at most, ${MAX_MESSAGE_BYTES / 1024} KB a message)`,
              hide: path !== '/v1/batch' && path !== '/v1/import',
              response: responses,
            },
          },
          async (request, reply) => {
            const body = objectBody(request.body);
            // Credentials first: a caller without a valid key learns nothing about the body.
            const key = await authorize(handlers, request, body);
            const messages = body.batch;
            if (!Array.isArray(messages))
              throw new ValidationError('analytics.invalid-batch', 'the body needs a "batch" array of messages', [
                { path: 'batch', message: 'must be an array' },
              ]);
            if (messages.length === 0)
              throw new ValidationError('analytics.empty-batch', 'the batch is empty', [
                { path: 'batch', message: 'must hold at least one message' },
              ]);
            const refused = new Map<number, ValidationError>();
            const checked = messages.map((message: unknown, index) => {
              if (!(message instanceof RefusedJsonItem)) return message;
              refused.set(index, message.toError());
              // Only its messageId goes on, so that its receipt names the message the client sent.
              const messageId = message.idField('messageId');
              return messageId === undefined ? {} : { messageId };
            });
            const historical = path === '/v1/import';
            return answer(
              reply,
              await acceptAs(handlers, request, key, {
                messages: checked,
                refused,
                sentAt: body.sentAt,
                context: body.context,
                historical,
              }),
            );
          },
        );
      }

      for (const [type, short] of SINGLE_ROUTES) {
        for (const path of [`/v1/${type}`, `/v1/${short}`]) {
          scope.post(
            path,
            {
              bodyLimit: MAX_SINGLE_BYTES,
              validatorCompiler: documentedBodyOnly,
              schema: {
                tags,
                security,
                consumes,
                summary: `One ${type} message`,
                hide: path === `/v1/${short}`,
                body: MessageDoc,
                response: responses,
              },
            },
            async (request, reply) => {
              const body = objectBody(request.body);
              const { writeKey: _key, ...message } = body;
              const key = await authorize(handlers, request, body);
              return answer(reply, await acceptAs(handlers, request, key, { messages: [message], route: type }));
            },
          );
        }
      }

      // analytics.js reads its settings from a CDN; pointed here (`cdnURL`), it sends to this server.
      scope.get<{ Params: { writeKey: string } }>(
        '/v1/projects/:writeKey/settings',
        {
          schema: {
            tags,
            security: [],
            summary: 'Settings analytics.js loads: its API host is this server',
            response: { 200: JsonObjectSchema, ...errorResponses },
          },
        },
        async (request, reply) => {
          if (!(await handlers.resolveWriteKey(request.params.writeKey))) throw new UnauthorizedError('unknown write key');
          // PUBLIC_URL when set; else, behind a trusted proxy, the host the browser asked for
          // (X-Forwarded-Host), not the proxy's upstream.
          const { publicUrl } = handlers;
          const host = publicUrl ? `${publicUrl.host}${publicUrl.pathname.replace(/\/+$/, '')}` : request.host || 'localhost';
          const protocol = publicUrl ? publicUrl.protocol.slice(0, -1) : request.protocol;
          // The answer names the host the request did: a shared cache that keys by URL alone would hand
          // one caller's host (a forged X-Forwarded-Host) to every browser, and their events with it.
          void reply.header('cache-control', 'no-store');
          return {
            integrations: { 'Segment.io': { apiKey: request.params.writeKey, apiHost: `${host}/v1`, protocol } },
            plan: {
              track: { __default: { enabled: true, integrations: {} } },
              identify: { __default: { enabled: true } },
              group: { __default: { enabled: true } },
            },
            edgeFunction: {},
            analyticsNextEnabled: true,
            middlewareSettings: {},
            enabledMiddleware: {},
            metrics: { sampleRate: 0 },
            legacyVideoPluginsEnabled: false,
            remotePlugins: [],
          };
        },
      );
    },
  };

  /** The write key of the request (header, query or body) and, from a browser, an origin its application allows. */
  async function authorize(deps: TrackingApiHandlers, request: FastifyRequest, body: Record<string, unknown>) {
    const key = await authenticate(deps.resolveWriteKey, request, body);
    const origin = headerOf(request, 'origin');
    if (origin && deps.allowedOrigins) {
      const allowed = await deps.allowedOrigins(key.appId);
      if (allowed && !originAllowed(allowed, origin)) throw new ForbiddenError(`origin ${origin} may not send to this application`);
    }
    return key;
  }

  async function acceptAs(
    deps: TrackingApiHandlers,
    request: FastifyRequest,
    key: Awaited<ReturnType<typeof authorize>>,
    what: Pick<MessagesCommand, 'messages' | 'refused' | 'route' | 'sentAt' | 'context' | 'historical'>,
  ): Promise<MessageReceipt[]> {
    const userAgent = headerOf(request, 'user-agent');
    return deps.acceptMessages({
      appId: key.appId,
      ...what,
      request: { ip: request.ip, correlationId: request.id, keyId: key.keyId, ...(userAgent ? { userAgent } : {}) },
    });
  }
}

/**
 * The write key from the Authorization header, the body or the query string. When two of them name
 * different applications, the request is refused rather than written to either.
 */
async function authenticate(resolve: ResolveWriteKey, request: FastifyRequest, body: Record<string, unknown>) {
  const fromHeader = writeKeyFromHeader(headerOf(request, 'authorization'));
  const fromBody = writeKeyFromBody(body);
  const query = (request.query as { writeKey?: unknown } | undefined)?.writeKey;
  const fromQuery = typeof query === 'string' && query.length > 0 ? query : undefined;
  const given = fromHeader ?? fromBody ?? fromQuery;
  if (!given)
    throw new UnauthorizedError('missing write key: send it as the Basic auth username, a Bearer token or "writeKey" in the body');
  const key = await resolve(given);
  if (!key) throw new UnauthorizedError('the write key is not valid');
  for (const [other, where] of [
    [fromBody, "the body's writeKey"],
    [fromQuery, "the query string's writeKey"],
  ] as const) {
    if (other === undefined || other === given) continue;
    const resolved = await resolve(other);
    if (!resolved) throw new UnauthorizedError(`${where} is not a valid write key`);
    if (resolved.appId !== key.appId)
      throw new ForbiddenError(`${where} belongs to another application than the ${fromHeader ? 'Authorization header' : "body's"} key`);
  }
  return key;
}

/**
 * `200 {"success": true}` as SDKs expect, with a receipt per message. When every message was
 * rejected, the request failed: the answer is the first message's problem, with every reason listed.
 */
function answer(reply: FastifyReply, receipts: MessageReceipt[]) {
  const rejected = receipts.filter((r) => r.status === 'rejected');
  if (rejected.length === receipts.length && rejected[0]?.status === 'rejected') {
    const first = rejected[0];
    const code = rejected.every((r) => r.status === 'rejected' && r.code === first.code) ? first.code : MESSAGE_ERRORS.invalid;
    const detail =
      rejected.length === 1
        ? first.reason
        : rejected.map((r) => `message ${r.index}: ${r.status === 'rejected' ? r.reason : ''}`).join('; ');
    throw new ValidationError(
      code,
      detail,
      rejected.flatMap((r) =>
        r.status === 'rejected'
          ? r.errors.map((e) => ({ path: receipts.length === 1 ? e.path : `batch[${r.index}].${e.path}`, message: e.message }))
          : [],
      ),
    );
  }
  return reply.status(200).send({
    success: true,
    receipts: receipts.map((r) =>
      r.status === 'rejected'
        ? {
            index: r.index,
            status: r.status,
            code: r.code,
            reason: r.reason,
            ...(r.messageId !== undefined ? { messageId: r.messageId } : {}),
          }
        : { index: r.index, status: r.status, event_id: r.eventId, ...(r.messageId !== undefined ? { messageId: r.messageId } : {}) },
    ),
  });
}

function objectBody(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ValidationError(MESSAGE_ERRORS.invalid, 'the body must be a JSON object', [
      { path: 'body', message: 'must be a JSON object' },
    ]);
  }
  return body as Record<string, unknown>;
}

function headerOf(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === 'string' ? value : undefined;
}
