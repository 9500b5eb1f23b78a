import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { unknownFields } from '../../../shared/contracts/known-fields.js';
import { ValidationError, type Violation } from '../../../shared/errors.js';
import { assertMayWriteAs, type Principal } from '../../../shared/http/auth.js';
import type { HttpContext } from '../../../shared/http/http-context.js';
import { RefusedJsonItem } from '../../../shared/http/json-limits.js';
import { looseBodyCompiler } from '../../../shared/http/strict-parameters.js';
import { errorResponses } from '../../../shared/http/schemas.js';
import type { TrackingHealth } from '../../application/queries.js';
import type { Recorded, RequestContext } from '../../application/record-tracking-event.js';
import { MAX_BATCH_SIZE, type TrackingReceipt } from '../../application/record-tracking-events.js';
import { PUBLISHED_AS, type RecordTrackingEventCommand, type TrackingEvent } from '../../domain/tracking-event.js';
import { INVALID_EVENT } from '../../domain/values.js';

export interface TrackingHandlers {
  record(command: RecordTrackingEventCommand, context: RequestContext, idempotencyKey?: string): Promise<Recorded>;
  recordBatch(
    commands: readonly RecordTrackingEventCommand[],
    context: RequestContext,
    key?: { readonly header: string; readonly places: readonly number[] },
  ): Promise<TrackingReceipt[]>;
  get(id: string): Promise<TrackingEvent>;
  health(): Promise<TrackingHealth>;
}

const Id = (description: string, example: string) => Type.String({ minLength: 1, maxLength: 255, description, examples: [example] });
const Url = (example: string) =>
  Type.String({ format: 'uri', maxLength: 2048, description: 'absolute http(s) URL, at most 2048 characters', examples: [example] });

/** The contract as documented in OpenAPI: types, formats and the required fields. */
const TrackingEventBody = Type.Object(
  {
    partner_id: Id('The partner (an application id when a write key sends the event)', 'partner123'),
    campaign_id: Id('The campaign', 'spring-sale'),
    visitor_id: Id('A stable id of the visitor', 'v-42'),
    interaction_type: Type.Union([Type.Literal('click'), Type.Literal('view'), Type.Literal('engagement')]),
    source_url: Url('https://blog.example.com/post'),
    destination_url: Url('https://shop.example.com/'),
    occurred_at: Type.Optional(Type.String({ format: 'date-time', description: 'RFC 3339; defaults to when Intake received the event' })),
  },
  { description: 'A tracking event', additionalProperties: false },
);
type TrackingEventFields = Partial<Record<keyof typeof TrackingEventBody.properties, unknown>>;
const unknownFieldsOf = (event: object): Violation[] => unknownFields(event, Object.keys(TrackingEventBody.properties));

// What the route itself checks: only the envelope. The domain checks every field and reports every
// invalid one at once (and a batch keeps its valid events), where the schema would stop at the first.
const AnyObject = Type.Object({});
const AnyBatch = Type.Object({ events: Type.Array(AnyObject, { minItems: 1, maxItems: MAX_BATCH_SIZE }) }, { additionalProperties: false });

const TrackingEventSchema = Type.Object(
  {
    tracking_event_id: Type.String({ description: 'UUIDv7' }),
    status: Type.Literal('recorded'),
    partner_id: Type.String(),
    campaign_id: Type.String(),
    visitor_id: Type.String(),
    interaction_type: Type.Union([Type.Literal('click'), Type.Literal('view'), Type.Literal('engagement')]),
    source_url: Type.String(),
    destination_url: Type.String(),
    occurred_at: Type.String({ format: 'date-time' }),
    recorded_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'TrackingEvent' },
);

const Recorded = Type.Object({
  tracking_event_id: Type.String(),
  status: Type.Literal('recorded'),
  message: Type.String(),
  processing_time_ms: Type.Number(),
});

const Violation = Type.Object({ path: Type.String(), message: Type.String() });
const Receipt = Type.Object({
  index: Type.Integer({ description: 'Position of the event in the request' }),
  status: Type.Union([Type.Literal('recorded'), Type.Literal('duplicate'), Type.Literal('rejected')]),
  tracking_event_id: Type.Optional(Type.String({ description: 'For a duplicate, the id its first request recorded' })),
  errors: Type.Optional(Type.Array(Violation)),
});
const BatchResult = Type.Object({
  recorded: Type.Integer(),
  duplicates: Type.Integer({ description: 'Events a retry under the same Idempotency-Key found recorded already' }),
  rejected: Type.Integer(),
  receipts: Type.Array(Receipt),
  processing_time_ms: Type.Number(),
});

const Health = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('down')]),
  service: Type.Literal('tracking'),
  publishes: Type.Array(Type.String()),
  checks: Type.Object({ database: Type.Object({ status: Type.String(), detail: Type.Optional(Type.String()) }) }),
});

const commandOf = (body: TrackingEventFields): RecordTrackingEventCommand => ({
  partnerId: body.partner_id,
  campaignId: body.campaign_id,
  visitorId: body.visitor_id,
  interactionType: body.interaction_type,
  sourceUrl: body.source_url,
  destinationUrl: body.destination_url,
  occurredAt: body.occurred_at,
});

const toBody = (event: TrackingEvent) => ({
  tracking_event_id: event.id,
  status: 'recorded' as const,
  partner_id: event.partnerId,
  campaign_id: event.campaignId,
  visitor_id: event.visitorId,
  interaction_type: event.interactionType,
  source_url: event.sourceUrl,
  destination_url: event.destinationUrl,
  occurred_at: event.occurredAt,
  recorded_at: event.recordedAt,
});

const receiptBody = (receipt: TrackingReceipt, index: number) =>
  receipt.status === 'rejected'
    ? { index, status: receipt.status, errors: [...receipt.violations] }
    : { index, status: receipt.status, tracking_event_id: receipt.event.id };

/** `Idempotency-Key`: a retry records nothing again (kept for good, scoped to the partner). */
const KeyHeader = Type.Object({ 'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 255 })) });

// Microsecond precision is plenty, and keeps the number short.
const millis = (elapsed: number) => Math.round(elapsed * 1000) / 1000;

const locationOf = (id: string) => `/api/v1/tracking/events/${id}`;

/**
 * A write key records tracking events for its own application only: the event's `partner_id` must be
 * the key's application id (as `POST /ingest` takes it as `partner_id`). The admin token records any.
 */
function assertMayRecordFor(principal: Principal | null, events: readonly TrackingEventFields[]): void {
  if (principal?.kind !== 'write-key') return;
  // A missing or malformed partner_id is left to the domain, which reports it as invalid input.
  for (const event of events) if (typeof event.partner_id === 'string') assertMayWriteAs(principal, event.partner_id);
}

/** The tracking API of SPEC.md section 6. */
export function trackingHttp(handlers: TrackingHandlers): HttpContext {
  return {
    schemas: [TrackingEventSchema],
    routes: async (scope) => {
      const app = scope.withTypeProvider<TypeBoxTypeProvider>();

      app.post(
        '/api/v1/tracking/events',
        {
          schema: {
            tags: ['tracking'],
            summary: 'Record a tracking event',
            description:
              'Stores the event durably before answering and publishes it as `tracking_event.recorded.v1`. ' +
              'An invalid event is refused with a 400 problem listing every invalid field. ' +
              'With an `Idempotency-Key` a retry answers the first event (header `Idempotent-Replayed: true`) and records nothing; ' +
              'the key sent with another event is refused with 422.',
            headers: KeyHeader,
            body: TrackingEventBody,
            response: { 201: Recorded, ...errorResponses, 422: Type.Ref('Problem') },
          },
          validatorCompiler: looseBodyCompiler(AnyObject),
          config: { access: 'write' },
        },
        async (request, reply) => {
          const body = request.body as TrackingEventFields;
          const unknown = unknownFieldsOf(body);
          if (unknown.length > 0)
            throw new ValidationError(INVALID_EVENT, unknown.map((v) => `${v.path} ${v.message}`).join('; '), unknown);
          assertMayRecordFor(request.principal, [body]);
          const { event, replayed } = await handlers.record(
            commandOf(body),
            { correlationId: request.id },
            request.headers['idempotency-key'],
          );
          if (replayed) reply.header('idempotent-replayed', 'true');
          return reply
            .status(201)
            .header('location', locationOf(event.id))
            .send({
              tracking_event_id: event.id,
              status: 'recorded' as const,
              message: 'Tracking event recorded successfully',
              processing_time_ms: millis(reply.elapsedTime),
            });
        },
      );

      app.post(
        '/api/v1/tracking/events/batch',
        {
          schema: {
            tags: ['tracking'],
            summary: `Record up to ${MAX_BATCH_SIZE} tracking events`,
            description:
              'Answers a receipt per event, in request order: `recorded` with its id, or `rejected` with every invalid field. ' +
              'An invalid event never drops the others; a batch that is not a list of objects is refused whole. ' +
              'With an `Idempotency-Key` each event is keyed by the header and its place in the batch: a retried batch answers `duplicate` with the first ids.',
            headers: KeyHeader,
            body: Type.Object(
              { events: Type.Array(TrackingEventBody, { minItems: 1, maxItems: MAX_BATCH_SIZE }) },
              { additionalProperties: false },
            ),
            response: { 200: BatchResult, ...errorResponses, 422: Type.Ref('Problem') },
          },
          validatorCompiler: looseBodyCompiler(AnyBatch),
          // Each event is held to the JSON limits alone: one too deep or with a lone surrogate is rejected by itself.
          config: { access: 'write', jsonItems: 'events' },
        },
        async (request, reply) => {
          const given = (request.body as { events: Array<TrackingEventFields | RefusedJsonItem> }).events;
          // An event the edge refuses (JSON limits, unknown fields) gets its receipt here, the others from the use case.
          const refusals = given.map((event): Violation[] =>
            event instanceof RefusedJsonItem ? [{ path: event.fault.path, message: event.fault.message }] : unknownFieldsOf(event),
          );
          const events = given.filter((event, index): event is TrackingEventFields => refusals[index]?.length === 0);
          assertMayRecordFor(request.principal, events);
          // Keys follow the place in the request, refused events counted, so a retry keys each event as before.
          const header = request.headers['idempotency-key'];
          const places = given.flatMap((_event, index) => (refusals[index]?.length === 0 ? [index] : []));
          const recordedOrRejected = await handlers.recordBatch(
            events.map(commandOf),
            { correlationId: request.id },
            header === undefined ? undefined : { header, places },
          );
          let next = 0;
          const receipts = refusals.map((violations): TrackingReceipt =>
            violations.length > 0 ? { status: 'rejected', violations } : (recordedOrRejected[next++] as TrackingReceipt),
          );
          const count = (status: TrackingReceipt['status']) => receipts.filter((receipt) => receipt.status === status).length;
          return reply.status(200).send({
            recorded: count('recorded'),
            duplicates: count('duplicate'),
            rejected: count('rejected'),
            receipts: receipts.map(receiptBody),
            processing_time_ms: millis(reply.elapsedTime),
          });
        },
      );

      app.get(
        '/api/v1/tracking/events/:id',
        {
          schema: {
            tags: ['tracking'],
            summary: 'Get one tracking event',
            params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
            response: { 200: Type.Ref('TrackingEvent'), ...errorResponses },
          },
        },
        async (request) => toBody(await handlers.get(request.params.id)),
      );

      app.get(
        '/api/v1/tracking/health',
        {
          schema: {
            tags: ['tracking'],
            summary: 'Whether the tracking service can record and serve events',
            description: 'Public, like /health: no token needed.',
            security: [],
            response: { 200: Health, 503: Health },
          },
          config: { access: 'public' },
        },
        async (_request, reply) => {
          const health = await handlers.health();
          return reply.status(health.status === 'ok' ? 200 : 503).send({
            status: health.status,
            service: 'tracking' as const,
            publishes: [PUBLISHED_AS],
            checks: { database: { status: health.database, ...(health.detail ? { detail: health.detail } : {}) } },
          });
        },
      );
    },
  };
}
