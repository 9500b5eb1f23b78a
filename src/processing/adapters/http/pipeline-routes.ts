import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { HttpContext } from '../../../shared/http/http-context.js';
import { errorResponses, pageBody, PageQuery, PageSchema } from '../../../shared/http/schemas.js';
import { pageRequestOf, type Page, type PageRequest } from '../../../shared/pagination.js';
import type { PipelineView } from '../../application/ports.js';
import type { StepConfig } from '../../domain/processor.js';
import { EVENT_TYPE_PATTERN_SOURCE } from '../../../shared/contracts/event-type-rule.js';

export interface PipelineHandlers {
  configure(eventType: string, steps: readonly StepConfig[]): Promise<PipelineView>;
  reset(eventType: string): Promise<void>;
  get(eventType: string): Promise<PipelineView>;
  list(page: PageRequest): Promise<Page<PipelineView>>;
}

const Step = Type.Object(
  {
    processor: Type.String({ description: 'normalize | project' }),
    fields: Type.Optional(Type.Array(Type.String(), { description: 'For project: the dot paths to keep' })),
  },
  { additionalProperties: false },
);

const PipelineSchema = Type.Object(
  {
    event_type: Type.String(),
    steps: Type.Array(Step),
    configured_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'null: the default pipeline' }),
  },
  { $id: 'Pipeline' },
);

const Params = Type.Object({
  event_type: Type.String({ minLength: 1, maxLength: 128, pattern: EVENT_TYPE_PATTERN_SOURCE }),
});

const toView = (view: PipelineView) => ({
  event_type: view.eventType,
  steps: view.steps.map((s) => ({ ...s })),
  configured_at: view.configuredAt,
});

/** Admin API of the processing pipelines per event type. */
export function pipelineHttp(handlers: PipelineHandlers): HttpContext {
  return {
    schemas: [PipelineSchema],
    routes: async (scope) => {
      const app = scope.withTypeProvider<TypeBoxTypeProvider>();
      app.put(
        '/api/pipelines/:event_type',
        {
          schema: {
            tags: ['processing'],
            summary: 'Configure the processing steps of an event type',
            params: Params,
            body: Type.Object({ steps: Type.Array(Step, { minItems: 1, maxItems: 20 }) }, { additionalProperties: false }),
            response: { 200: Type.Ref('Pipeline'), ...errorResponses },
          },
        },
        async (request) => toView(await handlers.configure(request.params.event_type, request.body.steps)),
      );
      app.get(
        '/api/pipelines',
        {
          schema: {
            tags: ['processing'],
            summary: 'List configured pipelines, by event type',
            description: 'Paged: `limit` (default 100, at most 1000) and `cursor` (the `next_cursor` of the previous page).',
            querystring: PageQuery,
            response: { 200: PageSchema(Type.Ref('Pipeline')), ...errorResponses },
          },
        },
        async (request) => pageBody(await handlers.list(pageRequestOf(request.query)), toView),
      );
      app.get(
        '/api/pipelines/:event_type',
        {
          schema: {
            tags: ['processing'],
            summary: 'The pipeline in force for an event type',
            params: Params,
            response: { 200: Type.Ref('Pipeline'), ...errorResponses },
          },
        },
        async (request) => toView(await handlers.get(request.params.event_type)),
      );
      app.delete(
        '/api/pipelines/:event_type',
        {
          schema: {
            tags: ['processing'],
            summary: 'Go back to the default pipeline (normalize)',
            params: Params,
            response: { 204: Type.Null(), ...errorResponses },
          },
        },
        async (request, reply) => {
          await handlers.reset(request.params.event_type);
          return reply.status(204).send(null);
        },
      );
    },
  };
}
