import { ValidationError } from '../../../shared/errors.js';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { refusePayloadFilters } from '../../../shared/http/payload-filters.js';
import { PARAMETER_PREFIXES } from '../../../shared/http/strict-parameters.js';
import { Type } from 'typebox';
import type { HttpContext } from '../../../shared/http/http-context.js';
import { errorResponses, JsonObjectSchema, PageQuery } from '../../../shared/http/schemas.js';
import { DEFAULT_PAGE_SIZE, type Page, type PageRequest } from '../../../shared/pagination.js';
import type { ItemFilter } from '../../application/ports.js';
import type { ItemWithHistory } from '../../application/queries.js';
import type { HistoryEntry, ItemView, PipelineStatus } from '../../domain/item-view.js';
import { parsePayloadFilter } from '../../domain/payload-filter.js';
import { instantBound, isBefore } from '../../../shared/instant-bound.js';

export interface QueryHandlers {
  getItem(id: string, asOf?: string): Promise<ItemWithHistory>;
  getView(id: string): Promise<ItemView>;
  listItems(filter: ItemFilter, page: PageRequest): Promise<Page<ItemView>>;
  listItemsWithHistory(filter: ItemFilter, page: PageRequest): Promise<Page<ItemWithHistory>>;
}

const Status = Type.Union(['received', 'ingested', 'validated', 'invalid', 'processed', 'failed'].map((s) => Type.Literal(s)));
const Violation = Type.Object({ path: Type.String(), rule: Type.String(), message: Type.String() });
const Step = Type.Object({ name: Type.String(), status: Type.String(), duration_ms: Type.Number(), error: Type.Optional(Type.String()) });

const itemProperties = {
  id: Type.String(),
  partner_id: Type.String(),
  event_type: Type.String(),
  payload: Type.Union([JsonObjectSchema, Type.Null()]),
  status: Status,
  received_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
  validation: Type.Union([
    Type.Object({
      schema_version: Type.Union([Type.Integer(), Type.Null()]),
      schema_partner_id: Type.Union([Type.String(), Type.Null()], {
        description: 'the source whose own schema judged the item; null for the schema of every source (or none)',
      }),
      errors: Type.Array(Violation),
    }),
    Type.Null(),
  ]),
  processing: Type.Union([
    Type.Object({
      result: Type.Union([JsonObjectSchema, Type.Null()]),
      steps: Type.Array(Step),
      reason: Type.Union([Type.String(), Type.Null()]),
      failed_step: Type.Union([Type.String(), Type.Null()]),
    }),
    Type.Null(),
  ]),
  routing: Type.Object(
    {
      deliveries: Type.Array(
        Type.Object({
          delivery_id: Type.String(),
          rule_id: Type.String(),
          destination_type: Type.Union([Type.String(), Type.Null()]),
          status: Type.String({ description: 'pending | retrying | succeeded | dead_lettered (as in /api/routing/deliveries)' }),
          attempts: Type.Integer(),
          last_error: Type.Union([Type.String(), Type.Null()]),
        }),
      ),
    },
    { description: 'The routing outcome: one entry per delivery' },
  ),
};

const History = Type.Array(
  Type.Object({
    event_id: Type.String(),
    type: Type.String(),
    version: Type.Integer(),
    recorded_at: Type.String({ format: 'date-time' }),
    data: JsonObjectSchema,
  }),
  { description: "The events of the item's stream, in order" },
);
const QueryItem = Type.Object({ ...itemProperties, history: Type.Optional(History) }, { $id: 'QueryItem' });

const ListQuery = Type.Intersect([
  PageQuery,
  Type.Object({
    status: Type.Optional(Status),
    history: Type.Optional(Type.Boolean({ default: true, description: "Each item's history (default); false leaves it out" })),
  }),
]);
const PAYLOAD_FILTER_HELP =
  'Equality filters on payload fields: `?payload.order_id=A17`, `?payload.customer.tier=2` (a number, true, false or null also matches ' +
  'that JSON value). Up to 5, each a path of up to 5 keys of letters, digits and _. On SQLite a filtered page looks through at most ' +
  '10,000 items or 8 MB of payloads, so it may hold fewer items than `limit`, even none, with a `next_cursor` to go on from.';
/** The `payload.*` parameters, beside those the route's schema names. */
const payloadFilterOf = (query: object) => parsePayloadFilter(query as Record<string, unknown>);
const Page_ = Type.Object({ items: Type.Array(Type.Ref('QueryItem')), next_cursor: Type.Union([Type.String(), Type.Null()]) });

const toBody = (view: ItemView) => ({
  id: view.id,
  partner_id: view.partnerId,
  event_type: view.eventType,
  payload: view.payload,
  status: view.status,
  received_at: view.receivedAt,
  updated_at: view.updatedAt,
  validation: view.validation && {
    schema_version: view.validation.schemaVersion,
    // Views written before the field read as the schema of every source, as their verdicts do.
    schema_partner_id: view.validation.schemaPartnerId ?? null,
    errors: view.validation.errors,
  },
  processing: view.processing && {
    result: view.processing.result,
    steps: view.processing.steps,
    reason: view.processing.reason,
    failed_step: view.processing.failedStep,
  },
  routing: {
    deliveries: view.deliveries.map((d) => ({
      delivery_id: d.deliveryId,
      rule_id: d.ruleId,
      destination_type: d.destinationType,
      status: d.status,
      attempts: d.attempts,
      last_error: d.lastError,
    })),
  },
});

const pageRequest = (query: { limit?: number; cursor?: string }): PageRequest => ({
  limit: query.limit ?? DEFAULT_PAGE_SIZE,
  cursor: query.cursor,
});
const historyBody = (history: readonly HistoryEntry[]) =>
  history.map((entry) => ({
    event_id: entry.eventId,
    type: entry.type,
    version: entry.version,
    recorded_at: entry.recordedAt,
    data: entry.data as Record<string, unknown>,
  }));

/** A page of the query API: each item with its history unless `?history=false`. */
async function listedPage(handlers: QueryHandlers, filter: ItemFilter, query: { limit?: number; cursor?: string; history?: boolean }) {
  const page = pageRequest(query);
  if (query.history === false) {
    const views = await handlers.listItems(filter, page);
    return { items: views.items.map(toBody), next_cursor: views.nextCursor };
  }
  const items = await handlers.listItemsWithHistory(filter, page);
  return {
    items: items.items.map(({ view, history }) => ({ ...toBody(view), history: historyBody(history) })),
    next_cursor: items.nextCursor,
  };
}

/** The read side of SPEC.md section 2. */
export function queryHttp(handlers: QueryHandlers): HttpContext {
  return {
    schemas: [QueryItem],
    routes: async (scope) => {
      const app = scope.withTypeProvider<TypeBoxTypeProvider>();

      app.get(
        '/query/all',
        {
          preValidation: refusePayloadFilters,
          schema: {
            tags: ['query'],
            summary: 'Items with their pipeline state',
            querystring: ListQuery,
            response: { 200: Page_, ...errorResponses },
          },
        },
        async (request) => listedPage(handlers, { status: request.query.status as PipelineStatus | undefined }, request.query),
      );

      app.get(
        '/query/partner/:partner_id',
        {
          schema: {
            tags: ['query'],
            summary: "A partner's items with their pipeline state",
            description: PAYLOAD_FILTER_HELP,
            params: Type.Object({ partner_id: Type.String({ minLength: 1, maxLength: 255 }) }),
            querystring: Type.Intersect([ListQuery], { [PARAMETER_PREFIXES]: ['payload.'] }),
            response: { 200: Page_, ...errorResponses },
          },
        },
        async (request) =>
          listedPage(
            handlers,
            {
              partnerId: request.params.partner_id,
              status: request.query.status as PipelineStatus | undefined,
              payload: payloadFilterOf(request.query),
            },
            request.query,
          ),
      );

      const EventView = Type.Object({
        event_id: Type.String(),
        app_id: Type.String(),
        event_type: Type.String(),
        payload: Type.Union([JsonObjectSchema, Type.Null()]),
        metadata: Type.Union([JsonObjectSchema, Type.Null()], {
          description: 'ip, user_agent, correlation_id, key_id, received_at, channel',
        }),
        status: Status,
        received_at: Type.String({ format: 'date-time' }),
        routing: itemProperties.routing,
      });
      const toEvent = (view: ItemView) => {
        const body = toBody(view);
        return {
          event_id: view.id,
          app_id: view.partnerId,
          event_type: view.eventType,
          payload: view.payload,
          metadata: view.metadata,
          status: view.status,
          received_at: view.receivedAt,
          routing: body.routing,
        };
      };

      app.get(
        '/api/events/app/:app_id',
        {
          schema: {
            tags: ['application events'],
            summary: "An application's events, in the order they were stored",
            description: PAYLOAD_FILTER_HELP,
            params: Type.Object({ app_id: Type.String({ minLength: 1, maxLength: 255 }) }),
            querystring: Type.Intersect(
              [
                PageQuery,
                Type.Object({
                  event_type: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
                  from: Type.Optional(Type.String({ format: 'date-time', description: 'received at or after (inclusive)' })),
                  to: Type.Optional(Type.String({ format: 'date-time', description: 'received before (exclusive)' })),
                }),
              ],
              { [PARAMETER_PREFIXES]: ['payload.'] },
            ),
            response: {
              200: Type.Object({ items: Type.Array(EventView), next_cursor: Type.Union([Type.String(), Type.Null()]) }),
              ...errorResponses,
            },
          },
        },
        async (request) => {
          const { event_type: eventType, from, to } = request.query;
          // An empty window is a mistake to say, not an empty page to answer (as the statistics do).
          // `to` is exclusive: from = to names no instant at all.
          if (from && to && !isBefore(from, to))
            throw new ValidationError('query.invalid-range', '`from` must be before `to`', [
              { path: 'from', message: 'must be before to' },
            ]);
          const page = await handlers.listItems(
            {
              partnerId: request.params.app_id,
              ...(eventType ? { eventType } : {}),
              ...(from ? { from: instantBound(from, 'up') } : {}),
              ...(to ? { to: instantBound(to, 'up') } : {}),
              payload: payloadFilterOf(request.query),
            },
            pageRequest(request.query),
          );
          return { items: page.items.map(toEvent), next_cursor: page.nextCursor };
        },
      );

      app.get(
        '/api/events/:event_id',
        {
          schema: {
            tags: ['application events'],
            summary: 'One event with its metadata, pipeline status and routing outcome',
            params: Type.Object({ event_id: Type.String({ maxLength: 64 }) }),
            response: { 200: EventView, ...errorResponses },
          },
        },
        async (request) => toEvent(await handlers.getView(request.params.event_id)),
      );

      app.get(
        '/query/:id',
        {
          schema: {
            tags: ['query'],
            summary: 'One item with its pipeline state and history',
            description: 'With `as_of`, the item is rebuilt from its events as it stood at that time.',
            params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
            querystring: Type.Object({
              as_of: Type.Optional(Type.String({ format: 'date-time', description: 'ISO-8601 date-time' })),
              // As the lists take it, so that one client can ask both the same way.
              history: Type.Optional(Type.Boolean({ default: true, description: "The item's history (default); false leaves it out" })),
            }),
            response: { 200: Type.Ref('QueryItem'), ...errorResponses },
          },
        },
        async (request) => {
          const { view, history } = await handlers.getItem(request.params.id, request.query.as_of);
          return request.query.history === false ? toBody(view) : { ...toBody(view), history: historyBody(history) };
        },
      );
    },
  };
}
