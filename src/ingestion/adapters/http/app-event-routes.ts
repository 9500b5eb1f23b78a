import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ValidationError } from '../../../shared/errors.js';
import { assertMayWriteAs } from '../../../shared/http/auth.js';
import { errorResponses, JsonObjectSchema } from '../../../shared/http/schemas.js';
import type { HttpContext } from '../../../shared/http/http-context.js';
import type { BatchEvent, BatchReceipt, IdempotencyKey, Receipt } from '../../application/ingest-data.js';
import type { IngestDataCommand } from '../../domain/ingested-data.js';
import { RefusedJsonItem } from '../../../shared/http/json-limits.js';
import { requestContextOf } from './ingestion-routes.js';
import { unknownFields } from '../../../shared/contracts/known-fields.js';
import { longerThan } from '../../../shared/contracts/text-length.js';

export interface AppEventHandlers {
  ingestEvent(command: IngestDataCommand, idempotencyKey?: IdempotencyKey): Promise<Receipt>;
  ingestBatch(commands: readonly BatchEvent[]): Promise<BatchReceipt[]>;
}

const MAX_BATCH = 500;
const MAX_BATCH_BYTES = 1024 * 1024;

const RoutingSummarySchema = Type.Object({
  rules_evaluated: Type.Integer(),
  rules_matched: Type.Integer(),
  rules_executed: Type.Integer(),
  deferred: Type.Optional(
    Type.Literal(true, { description: 'Routing is switched off here (INTAKE_DISABLE): it routes the event once it runs again' }),
  ),
});
const IngestResponse = Type.Object(
  {
    success: Type.Boolean(),
    message: Type.String(),
    data: Type.Object({ event_id: Type.String(), routing_summary: RoutingSummarySchema }),
  },
  { $id: 'AppEventAccepted' },
);
const AppParams = Type.Object({ app_id: Type.String({ minLength: 1, maxLength: 255 }) });
const KeyHeader = Type.Object({ 'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 255 })) });
const EventBody = Type.Object(
  {
    event_type: Type.String({ minLength: 1, maxLength: 128, examples: ['order_created'] }),
    payload: JsonObjectSchema,
    message_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'Deduplicates retries like Idempotency-Key' })),
  },
  { additionalProperties: false },
);

const accepted = (receipt: Receipt) => ({
  success: true,
  // A retry gets exactly the first answer; the Idempotent-Replayed header tells them apart.
  message: 'Data ingested successfully',
  data: { event_id: receipt.eventId, routing_summary: receipt.routing },
});

/** The application events API (SPEC.md section 3): admin token or a write key of the application. */
export function appEventHttp(handlers: AppEventHandlers): HttpContext {
  return {
    schemas: [IngestResponse],
    routes: async (scope) => {
      const app = scope.withTypeProvider<TypeBoxTypeProvider>();
      const tags = ['application events'];

      app.post(
        '/api/ingest/:app_id',
        {
          config: { access: 'write' },
          schema: {
            tags,
            summary: 'Ingest one event of any type',
            description:
              'Durable before the answer. Matching routing rules are evaluated now and delivered asynchronously. ' +
              'With `Idempotency-Key` (or `message_id`, which decides when both are given) a retry within the window returns the first result and stores nothing. ' +
              'An `Idempotency-Key` sent again with another event is refused with 422.',
            params: AppParams,
            headers: KeyHeader,
            body: EventBody,
            response: { 201: Type.Ref('AppEventAccepted'), ...errorResponses, 403: Type.Ref('Problem'), 422: Type.Ref('Problem') },
          },
        },
        async (request, reply) => {
          assertMayWriteAs(request.principal, request.params.app_id);
          const receipt = await handlers.ingestEvent(
            {
              partnerId: request.params.app_id,
              eventType: request.body.event_type,
              payload: request.body.payload,
              channel: 'application_api',
              request: requestContextOf(request),
            },
            keyOf(request.headers['idempotency-key'], request.body.message_id),
          );
          if (receipt.duplicate) reply.header('idempotent-replayed', 'true');
          return reply.status(201).send(accepted(receipt));
        },
      );

      app.post(
        '/api/ingest/:app_id/batch',
        {
          // The batch's own limit, or the server's BODY_LIMIT when that is lower.
          bodyLimit: Math.min(MAX_BATCH_BYTES, scope.initialConfig.bodyLimit ?? MAX_BATCH_BYTES),
          config: { access: 'write', jsonItems: 'events' },
          schema: {
            tags,
            summary: `Ingest up to ${MAX_BATCH} events (1 MB) in one request`,
            description:
              'Each event gets a receipt: accepted (with its id), duplicate (with the first id) or rejected (with the reason). A bad event never drops the others. ' +
              'With `Idempotency-Key`, a retried batch stores nothing again: each event without its own `message_id` is keyed by the header and its place in the batch.',
            params: AppParams,
            headers: KeyHeader,
            body: Type.Object(
              { events: Type.Array(Type.Unknown(), { minItems: 1, maxItems: MAX_BATCH }) },
              { additionalProperties: false },
            ),
            response: {
              200: Type.Object({
                success: Type.Boolean(),
                accepted: Type.Integer(),
                duplicates: Type.Integer(),
                rejected: Type.Integer(),
                results: Type.Array(
                  Type.Object({
                    index: Type.Integer(),
                    status: Type.String({ description: 'accepted | duplicate | rejected' }),
                    event_id: Type.Optional(Type.String()),
                    routing_summary: Type.Optional(RoutingSummarySchema),
                    code: Type.Optional(Type.String({ description: 'Why it was rejected, as a stable code (a problem’s `code`)' })),
                    reason: Type.Optional(Type.String()),
                    errors: Type.Optional(Type.Array(Type.Object({ path: Type.String(), message: Type.String() }))),
                  }),
                ),
              }),
              ...errorResponses,
              403: Type.Ref('Problem'),
            },
          },
        },
        async (request) => {
          assertMayWriteAs(request.principal, request.params.app_id);
          const context = requestContextOf(request);
          const events = request.body.events;
          const batchKey = request.headers['idempotency-key'];
          // Events that broke the JSON limits at the edge are rejected alone; the others go on.
          const passed = events.flatMap((raw, index) => (raw instanceof RefusedJsonItem ? [] : [{ raw, index }]));
          const stored =
            passed.length === 0
              ? []
              : await handlers.ingestBatch(
                  passed.map(({ raw, index }) =>
                    commandOf(raw, request.params.app_id, context, batchKey === undefined ? undefined : `${batchKey}#${index}`),
                  ),
                );
          const receipts: BatchReceipt[] = [
            ...stored.map((receipt) => ({ ...receipt, index: passed[receipt.index]?.index ?? receipt.index })),
            ...events.flatMap((raw, index) => (raw instanceof RefusedJsonItem ? [refusedReceipt(index, raw)] : [])),
          ].sort((a, b) => a.index - b.index);
          const count = (status: BatchReceipt['status']) => receipts.filter((r) => r.status === status).length;
          return {
            success: count('rejected') === 0,
            accepted: count('accepted'),
            duplicates: count('duplicate'),
            rejected: count('rejected'),
            results: receipts.map((r) =>
              r.status === 'accepted'
                ? { index: r.index, status: r.status, event_id: r.eventId, routing_summary: r.routing }
                : r.status === 'duplicate'
                  ? { index: r.index, status: r.status, event_id: r.eventId }
                  : { index: r.index, status: r.status, code: r.code, reason: r.reason, errors: [...r.errors] },
            ),
          };
        },
      );

      app.post(
        '/api/messages/:app_id',
        {
          config: { access: 'write' },
          schema: {
            tags,
            summary: 'Legacy: store a message (any JSON object) as an event of type "message"',
            params: AppParams,
            headers: KeyHeader,
            body: JsonObjectSchema,
            response: { 201: Type.Ref('AppEventAccepted'), ...errorResponses, 403: Type.Ref('Problem'), 422: Type.Ref('Problem') },
          },
        },
        async (request, reply) => {
          assertMayWriteAs(request.principal, request.params.app_id);
          const receipt = await handlers.ingestEvent(
            {
              partnerId: request.params.app_id,
              eventType: 'message',
              payload: request.body,
              channel: 'messages',
              request: requestContextOf(request),
            },
            keyOf(request.headers['idempotency-key'], undefined),
          );
          if (receipt.duplicate) reply.header('idempotent-replayed', 'true');
          return reply.status(201).send(accepted(receipt));
        },
      );
    },
  };
}

/**
 * The header names one request; an event's own `message_id` names the message (see `IdempotencyKey`).
 * Given both, the message id decides, as it does for a batch's event: an SDK that sends a new header
 * with each attempt of one message must still store it once.
 */
function keyOf(header: string | undefined, messageId: string | undefined): IdempotencyKey | undefined {
  if (messageId !== undefined) return { key: messageId, sameRequestOnly: false };
  return header === undefined ? undefined : { key: header, sameRequestOnly: true };
}

/** The event's command, keyed by its own `message_id`, else by the batch's key and its place (`requestKey`). */
function commandOf(raw: unknown, appId: string, context: IngestDataCommand['request'], requestKey?: string): BatchEvent {
  const event = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : undefined;
  const given = event?.message_id;
  const messageId = typeof given === 'string' && given.length >= 1 && !longerThan(given, 255) ? given : undefined;
  const refused = refusalOf(event, messageId);
  return {
    ...(refused ? { refused } : {}),
    command: {
      partnerId: appId,
      eventType: event?.event_type ?? '',
      payload: event ? event.payload : raw,
      channel: 'application_api',
      request: context,
    },
    ...(messageId ? { messageId } : requestKey ? { requestKey } : {}),
  };
}

/** Why the edge rejects a batch's event by itself, if it does. */
function refusalOf(event: Record<string, unknown> | undefined, messageId: string | undefined): ValidationError | undefined {
  if (!event)
    return new ValidationError('request.invalid', 'event must be a JSON object', [{ path: 'event', message: 'must be a JSON object' }]);
  // Dropped, a bad message_id would leave its event without the deduplication its sender asked for.
  if (event.message_id !== undefined && messageId === undefined) {
    return new ValidationError('ingestion.invalid-message-id', 'message_id must be a string of 1 to 255 characters', [
      { path: 'message_id', message: 'must be a string of 1 to 255 characters' },
    ]);
  }
  const unknown = unknownFields(event, Object.keys(EventBody.properties));
  return unknown.length > 0
    ? new ValidationError('request.invalid', unknown.map((v) => `${v.path} ${v.message}`).join('; '), unknown)
    : undefined;
}

function refusedReceipt(index: number, refused: RefusedJsonItem): BatchReceipt {
  const { path, message } = refused.fault;
  return { index, status: 'rejected', code: refused.toError().code, reason: `${path} ${message}`, errors: [{ path, message }] };
}
