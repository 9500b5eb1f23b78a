import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { OPTIONAL_BODY } from '../../../shared/http/schemas.js';
import type { HttpContext } from '../../../app/http/server.js';
import { errorResponses, pageBody, PageQuery, PageSchema } from '../../../shared/http/schemas.js';
import { pageRequestOf, type Page, type PageRequest } from '../../../shared/pagination.js';
import type { IssuedKey } from '../../application/manage-applications.js';
import type { ApplicationView, KeyView } from '../../application/ports.js';

export interface ApplicationHandlers {
  create(input: { name: unknown; appId?: unknown }): Promise<ApplicationView>;
  get(appId: string): Promise<ApplicationView>;
  rename(appId: string, name: unknown): Promise<ApplicationView>;
  list(page: PageRequest): Promise<Page<ApplicationView>>;
  issueKey(appId: string, name: string | null): Promise<IssuedKey>;
  listKeys(appId: string, page: PageRequest): Promise<Page<KeyView>>;
  revokeKey(appId: string, keyId: string): Promise<void>;
}

const Application = Type.Object(
  { app_id: Type.String(), name: Type.String(), created_at: Type.String({ format: 'date-time' }) },
  { $id: 'Application' },
);
const Key = Type.Object(
  {
    key_id: Type.String(),
    app_id: Type.String(),
    name: Type.Union([Type.String(), Type.Null()]),
    created_at: Type.String({ format: 'date-time' }),
    revoked_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { $id: 'WriteKey' },
);
const AppParams = Type.Object({ app_id: Type.String({ minLength: 1, maxLength: 255 }) });

const appBody = (app: ApplicationView) => ({ app_id: app.appId, name: app.name, created_at: app.createdAt });
const keyBody = (key: KeyView) => ({
  key_id: key.keyId,
  app_id: key.appId,
  name: key.name,
  created_at: key.issuedAt,
  revoked_at: key.revokedAt,
});

/** Applications (sources) and their write keys: admin only. */
export function applicationHttp(handlers: ApplicationHandlers): HttpContext {
  return {
    schemas: [Application, Key],
    routes: async (scope) => {
      const app = scope.withTypeProvider<TypeBoxTypeProvider>();
      app.post(
        '/api/applications',
        {
          schema: {
            tags: ['applications'],
            summary: 'Create an application (a source of events)',
            body: Type.Object(
              {
                name: Type.String({ minLength: 1, maxLength: 255 }),
                app_id: Type.Optional(
                  Type.Union([Type.String({ minLength: 1, maxLength: 255 }), Type.Integer()], {
                    description:
                      'Generated when absent; an integer means its decimal string. Not "." or "..", no whitespace at either end, ' +
                      'no control, line-separator or bidirectional-formatting characters',
                  }),
                ),
              },
              { additionalProperties: false },
            ),
            response: { 201: Type.Ref('Application'), ...errorResponses, 409: Type.Ref('Problem') },
          },
        },
        async (request, reply) =>
          reply.status(201).send(appBody(await handlers.create({ name: request.body.name, appId: request.body.app_id }))),
      );
      app.get(
        '/api/applications',
        {
          schema: {
            tags: ['applications'],
            summary: 'List applications',
            querystring: PageQuery,
            response: {
              200: PageSchema(Type.Ref('Application')),
              ...errorResponses,
            },
          },
        },
        async (request) => pageBody(await handlers.list(pageRequestOf(request.query)), appBody),
      );
      app.get(
        '/api/applications/:app_id',
        {
          schema: {
            tags: ['applications'],
            summary: 'Get an application',
            params: AppParams,
            response: { 200: Type.Ref('Application'), ...errorResponses },
          },
        },
        async (request) => appBody(await handlers.get(request.params.app_id)),
      );
      app.patch(
        '/api/applications/:app_id',
        {
          schema: {
            tags: ['applications'],
            summary: 'Rename an application',
            description: 'An application created on the fly, the first time the admin wrote as it, is named after its id.',
            params: AppParams,
            body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 255 }) }, { additionalProperties: false }),
            response: { 200: Type.Ref('Application'), ...errorResponses },
          },
        },
        async (request) => appBody(await handlers.rename(request.params.app_id, request.body.name)),
      );
      app.post(
        '/api/applications/:app_id/keys',
        {
          schema: {
            tags: ['applications'],
            summary: 'Issue a write key',
            description: 'The key is in `key` of this response only: Intake keeps just its digest.',
            [OPTIONAL_BODY]: true,
            params: AppParams,
            body: Type.Object({ name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })) }, { additionalProperties: false }),
            response: { 201: Type.Intersect([Type.Ref('WriteKey'), Type.Object({ key: Type.String() })]), ...errorResponses },
          },
          // The body is optional: `curl -X POST …/keys` with none at all issues an unnamed key.
          preValidation: async (request) => {
            request.body ??= {};
          },
        },
        async (request, reply) => {
          const issued = await handlers.issueKey(request.params.app_id, request.body.name ?? null);
          return reply.status(201).send({ ...keyBody(issued), key: issued.key });
        },
      );
      app.get(
        '/api/applications/:app_id/keys',
        {
          schema: {
            tags: ['applications'],
            summary: "List an application's write keys (never their secrets), oldest first",
            description: 'Paged: `limit` (default 100, at most 1000) and `cursor` (the `next_cursor` of the previous page).',
            params: AppParams,
            querystring: PageQuery,
            response: { 200: PageSchema(Type.Ref('WriteKey')), ...errorResponses },
          },
        },
        async (request) => pageBody(await handlers.listKeys(request.params.app_id, pageRequestOf(request.query)), keyBody),
      );
      app.delete(
        '/api/applications/:app_id/keys/:key_id',
        {
          schema: {
            tags: ['applications'],
            summary: 'Revoke a write key (effective immediately)',
            params: Type.Object({ app_id: Type.String({ minLength: 1, maxLength: 255 }), key_id: Type.String({ maxLength: 64 }) }),
            response: { 204: Type.Null(), ...errorResponses },
          },
        },
        async (request, reply) => {
          await handlers.revokeKey(request.params.app_id, request.params.key_id);
          return reply.status(204).send(null);
        },
      );
    },
  };
}
