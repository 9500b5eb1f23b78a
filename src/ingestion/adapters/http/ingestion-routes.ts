import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { refusePayloadFilters } from '../../../shared/http/payload-filters.js';
import { Type } from 'typebox';
import type { FastifyRequest } from 'fastify';
import { assertMayWriteAs, keyIdOf } from '../../../shared/http/auth.js';
import type { HttpContext } from '../../../shared/http/http-context.js';
import { errorResponses, JsonObjectSchema, PageQuery } from '../../../shared/http/schemas.js';
import { DEFAULT_PAGE_SIZE, type Page } from '../../../shared/pagination.js';
import type { IngestDataCommand, IngestedItem, RequestContext } from '../../domain/ingested-data.js';
import { ITEM_STATUSES, type ItemStatus } from '../../domain/item-status.js';
import type { IdempotencyKey, Ingested, Receipt } from '../../application/ingest-data.js';
import type { ItemWithStatus } from '../../application/ports.js';
import type { GetAllData, GetDataById, GetDataByPartnerId } from '../../application/queries.js';

export interface IngestionHandlers {
  ingest(command: IngestDataCommand): Promise<Ingested>;
  /** The same under an `Idempotency-Key`: a retry answers the first item and stores nothing. */
  ingestEvent(command: IngestDataCommand, idempotencyKey: IdempotencyKey): Promise<Receipt>;
  getDataById(query: GetDataById): Promise<ItemWithStatus>;
  getAllData(query: GetAllData): Promise<Page<ItemWithStatus>>;
  getDataByPartnerId(query: GetDataByPartnerId): Promise<Page<ItemWithStatus>>;
}

const ItemSchema = Type.Object(
  {
    id: Type.String({ description: 'UUIDv7, time-ordered' }),
    partner_id: Type.String(),
    event_type: Type.String(),
    payload: JsonObjectSchema,
    status: Type.Union(
      ITEM_STATUSES.map((status) => Type.Literal(status)),
      { description: 'Where the item stands in the pipeline (as in /query/{id}); `ingested` right after the POST' },
    ),
    received_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'IngestedItem' },
);

const ItemPage = Type.Object({
  items: Type.Array(Type.Ref('IngestedItem')),
  next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `cursor` for the next page; null on the last page' }),
});

const IngestBody = Type.Object(
  {
    partner_id: Type.String({ minLength: 1, maxLength: 255, examples: ['partner123'] }),
    event_type: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'Defaults to "data"' })),
    payload: JsonObjectSchema,
  },
  { additionalProperties: false },
);

// A new item (the POST's answer) is `ingested`; a read answers the status the view holds.
const toBody = (item: IngestedItem & { readonly status?: ItemStatus }) => ({
  id: item.id,
  partner_id: item.partnerId,
  event_type: item.eventType,
  payload: item.payload,
  status: item.status ?? ('ingested' as const),
  received_at: item.receivedAt,
});

const pageBody = (page: Page<ItemWithStatus>) => ({ items: page.items.map(toBody), next_cursor: page.nextCursor });

export function requestContextOf(request: FastifyRequest): RequestContext {
  const userAgent = request.headers['user-agent'];
  const keyId = keyIdOf(request.principal);
  return {
    ip: request.ip,
    correlationId: request.id,
    ...(typeof userAgent === 'string' ? { userAgent } : {}),
    ...(keyId ? { keyId } : {}),
  };
}

/** The partner data API of SPEC.md section 1. */
export function ingestionHttp(handlers: IngestionHandlers): HttpContext {
  return {
    schemas: [ItemSchema],
    routes: async (scope) => {
      const app = scope.withTypeProvider<TypeBoxTypeProvider>();

      app.post(
        '/ingest',
        {
          config: { access: 'write' },
          schema: {
            tags: ['ingestion'],
            summary: 'Ingest one item',
            description:
              'Stores the item durably in the event store before answering. Accepts the admin token or a write key of the partner.',
            headers: Type.Object({ 'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 255 })) }),
            body: IngestBody,
            response: { 201: Type.Ref('IngestedItem'), ...errorResponses, 422: Type.Ref('Problem') },
          },
        },
        async (request, reply) => {
          assertMayWriteAs(request.principal, request.body.partner_id);
          const command: IngestDataCommand = {
            partnerId: request.body.partner_id,
            eventType: request.body.event_type,
            payload: request.body.payload,
            channel: 'partner_api',
            request: requestContextOf(request),
          };
          const key = request.headers['idempotency-key'];
          if (key === undefined) {
            const { item } = await handlers.ingest(command);
            return reply.status(201).header('location', `/ingest/${item.id}`).send(toBody(item));
          }
          // Taken as /api/ingest takes it: ignored, a retry would have stored the item twice.
          const receipt = await handlers.ingestEvent(command, { key, sameRequestOnly: true });
          const item = await handlers.getDataById({ id: receipt.eventId });
          if (receipt.duplicate) reply.header('idempotent-replayed', 'true');
          return reply.status(201).header('location', `/ingest/${item.id}`).send(toBody(item));
        },
      );

      app.get(
        '/ingest/all',
        {
          preValidation: refusePayloadFilters,
          schema: {
            tags: ['ingestion'],
            summary: 'List all items',
            querystring: PageQuery,
            response: { 200: ItemPage, ...errorResponses },
          },
        },
        async (request) =>
          pageBody(await handlers.getAllData({ page: { limit: request.query.limit ?? DEFAULT_PAGE_SIZE, cursor: request.query.cursor } })),
      );

      app.get(
        '/ingest/partner/:partner_id',
        {
          preValidation: refusePayloadFilters,
          schema: {
            tags: ['ingestion'],
            summary: "List a partner's items",
            params: Type.Object({ partner_id: Type.String({ minLength: 1, maxLength: 255 }) }),
            querystring: PageQuery,
            response: { 200: ItemPage, ...errorResponses },
          },
        },
        async (request) =>
          pageBody(
            await handlers.getDataByPartnerId({
              partnerId: request.params.partner_id,
              page: { limit: request.query.limit ?? DEFAULT_PAGE_SIZE, cursor: request.query.cursor },
            }),
          ),
      );

      app.get(
        '/ingest/:id',
        {
          schema: {
            tags: ['ingestion'],
            summary: 'Get one item',
            params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
            response: { 200: Type.Ref('IngestedItem'), ...errorResponses },
          },
        },
        async (request) => toBody(await handlers.getDataById({ id: request.params.id })),
      );
    },
  };
}
