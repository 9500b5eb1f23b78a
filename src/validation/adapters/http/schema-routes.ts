import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { HttpContext } from '../../../shared/http/http-context.js';
import { ValidationError } from '../../../shared/errors.js';
import { errorResponses, pageBody, PageQuery, PageSchema } from '../../../shared/http/schemas.js';
import { pageRequestOf, type Page, type PageRequest } from '../../../shared/pagination.js';
import type { StoredSchema } from '../../application/ports.js';
import type { SchemaKey } from '../../domain/schema-registry.js';
import { EVENT_TYPE_PATTERN_SOURCE } from '../../../shared/contracts/event-type-rule.js';

export interface SchemaHandlers {
  register(key: SchemaKey, schema: unknown): Promise<StoredSchema>;
  remove(key: SchemaKey): Promise<void>;
  get(key: SchemaKey): Promise<StoredSchema>;
  list(page: PageRequest): Promise<Page<StoredSchema>>;
}

const SchemaView = Type.Object(
  {
    event_type: Type.String(),
    partner_id: Type.Union([Type.String(), Type.Null()], { description: 'null: applies to every source without its own schema' }),
    version: Type.Integer(),
    schema: Type.Unknown({ description: 'JSON Schema, draft 2020-12 (a `$schema` naming another draft is refused)' }),
    registered_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'RegisteredSchema' },
);

const EventTypeParams = Type.Object({
  event_type: Type.String({ minLength: 1, maxLength: 128, pattern: EVENT_TYPE_PATTERN_SOURCE }),
});
const ScopeQuery = Type.Object({
  partner_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'Scope the schema to one source' })),
});

const toView = (schema: StoredSchema) => ({
  event_type: schema.eventType,
  partner_id: schema.partnerId,
  version: schema.version,
  schema: schema.schema,
  registered_at: schema.registeredAt,
});

/** The schema registry's admin API. */
export function schemaHttp(handlers: SchemaHandlers): HttpContext {
  return {
    schemas: [SchemaView],
    routes: async (scope) => {
      const app = scope.withTypeProvider<TypeBoxTypeProvider>();
      const key = (params: { event_type: string }, query: { partner_id?: string }): SchemaKey => ({
        eventType: params.event_type,
        partnerId: query.partner_id ?? null,
      });

      app.put(
        '/api/schemas/:event_type',
        {
          schema: {
            tags: ['schemas'],
            summary: 'Register a new version of the JSON Schema for an event type',
            description:
              'Items are validated against the version in force when they were ingested. An invalid JSON Schema is refused with 400. ' +
              'The source (`partner_id`) may be given in the body or, as GET and DELETE take it, in the query; both must then agree.',
            params: EventTypeParams,
            querystring: ScopeQuery,
            body: Type.Object(
              { schema: Type.Unknown(), partner_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })) },
              { additionalProperties: false },
            ),
            response: { 200: Type.Ref('RegisteredSchema'), ...errorResponses },
          },
        },
        async (request) => {
          // GET and DELETE take the source in the query: a PUT that did so registered the schema for every source.
          const { partner_id: inBody } = request.body;
          const { partner_id: inQuery } = request.query;
          if (inBody !== undefined && inQuery !== undefined && inBody !== inQuery) {
            throw new ValidationError('request.invalid', 'partner_id is given twice, in the query and in the body, with different values', [
              { path: 'partner_id', message: 'differs between the query and the body' },
            ]);
          }
          return toView(await handlers.register(key(request.params, { partner_id: inBody ?? inQuery }), request.body.schema));
        },
      );

      app.get(
        '/api/schemas',
        {
          schema: {
            tags: ['schemas'],
            summary: 'List the schemas in force, by event type, then source',
            description:
              'Paged: `limit` (default 100, at most 1000) and `cursor` (the `next_cursor` of the previous page). The schema for ' +
              'every source comes before the sources’ own.',
            querystring: PageQuery,
            response: { 200: PageSchema(Type.Ref('RegisteredSchema')), ...errorResponses },
          },
        },
        async (request) => pageBody(await handlers.list(pageRequestOf(request.query)), toView),
      );

      app.get(
        '/api/schemas/:event_type',
        {
          schema: {
            tags: ['schemas'],
            summary: 'Get the schema in force for an event type',
            params: EventTypeParams,
            querystring: ScopeQuery,
            response: { 200: Type.Ref('RegisteredSchema'), ...errorResponses },
          },
        },
        async (request) => toView(await handlers.get(key(request.params, request.query))),
      );

      app.delete(
        '/api/schemas/:event_type',
        {
          schema: {
            tags: ['schemas'],
            summary: 'Remove the schema: later items of this type are no longer checked against it',
            params: EventTypeParams,
            querystring: ScopeQuery,
            response: { 204: Type.Null(), ...errorResponses },
          },
        },
        async (request, reply) => {
          await handlers.remove(key(request.params, request.query));
          return reply.status(204).send(null);
        },
      );
    },
  };
}
