import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errorResponses } from '../../../shared/http/schemas.js';
import type { HttpContext } from '../../../shared/http/http-context.js';
import type { SourceSettings } from '../../application/source-settings.js';

const Settings = Type.Object({
  app_id: Type.String(),
  allowed_origins: Type.Union([Type.Array(Type.String()), Type.Null()], { description: 'Browser origins that may send; null: any' }),
});
const Params = Type.Object({ app_id: Type.String({ minLength: 1, maxLength: 255 }) });
const body = (s: SourceSettings) => ({ app_id: s.appId, allowed_origins: s.allowedOrigins === null ? null : [...s.allowedOrigins] });

/** The tracking API's settings per application: admin only. */
export function sourceSettingsHttp(handlers: {
  get(appId: string): Promise<SourceSettings>;
  put(appId: string, allowedOrigins: unknown): Promise<SourceSettings>;
}): HttpContext {
  return {
    routes: async (scope) => {
      const app = scope.withTypeProvider<TypeBoxTypeProvider>();
      const tags = ['tracking API (Segment / RudderStack)'];
      app.get(
        '/api/analytics/sources/:app_id',
        {
          schema: {
            tags,
            summary: "The tracking API's settings of an application",
            params: Params,
            response: { 200: Settings, ...errorResponses, 403: Type.Ref('Problem') },
          },
        },
        async (request) => body(await handlers.get(request.params.app_id)),
      );
      app.put(
        '/api/analytics/sources/:app_id',
        {
          schema: {
            tags,
            summary: 'Set the browser origins allowed to send with the application write keys (null: any origin)',
            params: Params,
            body: Type.Object({ allowed_origins: Type.Union([Type.Array(Type.String()), Type.Null()]) }, { additionalProperties: false }),
            response: { 200: Settings, ...errorResponses, 403: Type.Ref('Problem') },
          },
        },
        async (request) => body(await handlers.put(request.params.app_id, request.body.allowed_origins)),
      );
    },
  };
}
