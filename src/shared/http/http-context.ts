import type { FastifyPluginAsync } from 'fastify';
import type { TSchema } from 'typebox';

/** A bounded context's HTTP adapter: its routes, as one encapsulated plugin, and the named schemas they use. */
export interface HttpContext {
  /**
   * Named schemas the routes refer to with Type.Ref. They are added at the root: Fastify gives a
   * plugin that adds its own schemas a fresh validator, which would silently drop the TypeBox one.
   */
  readonly schemas?: readonly TSchema[];
  readonly routes: FastifyPluginAsync;
  /** Registered outside the admin-token guard: the context authenticates its own requests (the tracking API's write keys). */
  readonly public?: boolean;
}
