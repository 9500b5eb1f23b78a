import { NotFoundError, ValidationError } from '../../shared/errors.js';
import { refuseBody } from '../../shared/http/no-body.js';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Kysely } from 'kysely';
import { pageParked, type ParkedEvent } from '../../shared/subscriptions/checkpoints.js';
import type { Subscriptions } from '../../shared/subscriptions/in-process-subscriptions.js';
import { errorResponses, PageQuery, PageSchema } from '../../shared/http/schemas.js';
import { decodeCursor, pageOf, pageRequestOf, type Page, type PageRequest } from '../../shared/pagination.js';
import type { HttpContext } from './server.js';

const Status = Type.Object({
  name: Type.String(),
  position: Type.Integer({
    description: 'The last position handled: in the log (one process), or in the broker’s stream (a role of the distributed mode)',
  }),
  head: Type.Integer({ description: 'The last position of that log or stream' }),
  lag: Type.Integer({
    description:
      'Events still to handle: head − position in one process; in a role, the messages of its types not yet handled (the stream holds every service’s, so fewer)',
  }),
  parked: Type.Integer(),
  state: Type.Union([Type.Literal('running'), Type.Literal('retrying'), Type.Literal('stopped')]),
  fault: Type.Optional(Type.String()),
  replaying_until: Type.Optional(
    Type.Integer({ description: 'While a replay rebuilds the view: the head when it began; the view is incomplete until then' }),
  ),
});
const Parked = Type.Object({
  subscriber: Type.String(),
  position: Type.Integer(),
  event_id: Type.String(),
  event_type: Type.String(),
  stream_id: Type.String(),
  error: Type.String(),
  attempts: Type.Integer(),
  parked_at: Type.String(),
});
const Name = Type.Object({ name: Type.String({ maxLength: 64 }) });

/** What the admin API operates: in-process subscriptions (embedded) or bus consumers (a distributed role). */
export interface SubscriptionAdmin extends Pick<Subscriptions, 'status' | 'replay' | 'retryParked' | 'discardParked'> {
  parked(name: string, page: PageRequest): Promise<Page<ParkedEvent>>;
}

export function subscriptionAdminOf(
  subscriptions: Pick<Subscriptions, 'status' | 'replay' | 'retryParked' | 'discardParked'>,
  db: Kysely<object>,
): SubscriptionAdmin {
  return {
    status: () => subscriptions.status(),
    replay: (name) => subscriptions.replay(name),
    retryParked: (name, ref) => subscriptions.retryParked(name, ref),
    discardParked: (name, ref) => subscriptions.discardParked(name, ref),
    async parked(name, page) {
      // As replay and retry answer: an unknown name is a 404, not an empty list.
      const known = (await subscriptions.status()).map((s) => s.name);
      if (!known.includes(name))
        throw new NotFoundError('subscriptions.unknown-subscriber', `no subscriber named "${name}" (known: ${known.join(', ')})`);
      return pageParked(db, name, page);
    },
  };
}

// A position in a log, or an event id.
// (`INTAKE#2759`: a message of a stream that could not be read as an event.)
const PARKED_REF = '^([0-9]{1,16}|[0-9A-Za-z][0-9A-Za-z_#-]{0,63})$';

/** A position when it is one exactly; digits past 2^53 would be rounded to another's, and are looked up as they are. */
const parkedRefOf = (ref: string): number | string => (/^[0-9]+$/.test(ref) && Number.isSafeInteger(Number(ref)) ? Number(ref) : ref);

/** Operating the subscribers: lag, replay of views, parked (poison) events. */
export function subscriptionHttp(subscriptions: SubscriptionAdmin): HttpContext {
  return {
    routes: async (scope) => {
      const app = scope.withTypeProvider<TypeBoxTypeProvider>();
      app.get(
        '/api/admin/subscriptions',
        {
          schema: {
            tags: ['operations'],
            summary: 'Subscribers with their checkpoint, lag behind the head and parked events',
            description: 'Paged as every list is (a process has a dozen subscribers at most), in the order they run.',
            querystring: PageQuery,
            response: { 200: PageSchema(Status), ...errorResponses },
          },
        },
        async (request) => {
          const { limit, cursor } = pageRequestOf(request.query);
          // In the order the pipeline runs them (as the dashboard shows them), after the cursor's name.
          const all = await subscriptions.status();
          const start = cursor === undefined ? 0 : all.findIndex((s) => s.name === decodeCursor(cursor)) + 1;
          if (start === 0 && cursor !== undefined)
            throw new ValidationError('pagination.invalid-cursor', 'cursor is not one this API returned', [
              { path: 'cursor', message: 'invalid cursor' },
            ]);
          const page = pageOf(all.slice(start), limit, (s) => s.name);
          const items = page.items.map(({ replayingUntil, ...status }) =>
            replayingUntil === undefined ? status : { ...status, replaying_until: replayingUntil },
          );
          return { items, next_cursor: page.nextCursor };
        },
      );
      app.post(
        '/api/admin/subscriptions/:name/replay',
        {
          preValidation: refuseBody,
          schema: {
            tags: ['operations'],
            summary: "Throw away a subscriber's view and rebuild it from the event store",
            description: 'Answers 202 once the view is cleared; the rebuild runs in the background (watch `lag`).',
            params: Name,
            response: {
              202: Type.Object({ subscriber: Type.String(), status: Type.Literal('replaying') }),
              ...errorResponses,
              409: Type.Ref('Problem'),
            },
          },
        },
        async (request, reply) => {
          await subscriptions.replay(request.params.name);
          return reply.status(202).send({ subscriber: request.params.name, status: 'replaying' as const });
        },
      );
      app.get(
        '/api/admin/subscriptions/:name/parked',
        {
          schema: {
            tags: ['operations'],
            summary: 'Events a subscriber parked: after repeated failures, or at once for a member of a one-pass chain (the others go on)',
            params: Name,
            querystring: PageQuery,
            response: { 200: PageSchema(Parked), ...errorResponses },
          },
        },
        async (request) => {
          const page = await subscriptions.parked(request.params.name, pageRequestOf(request.query));
          return {
            items: page.items.map((p) => ({
              subscriber: p.subscriber,
              position: p.position,
              event_id: p.eventId,
              event_type: p.eventType,
              stream_id: p.streamId,
              error: p.error,
              attempts: p.attempts,
              parked_at: p.parkedAt,
            })),
            next_cursor: page.nextCursor,
          };
        },
      );
      app.post(
        '/api/admin/subscriptions/:name/parked/:ref/retry',
        {
          preValidation: refuseBody,
          schema: {
            tags: ['operations'],
            summary: 'Handle a parked event again',
            description:
              "`ref` is the parked event's `event_id`, or its `position` in the log it was read from; a position that names parked events of several services' logs (the distributed mode) answers 409 with their event ids.",
            params: Type.Object({ name: Type.String({ maxLength: 64 }), ref: Type.String({ pattern: PARKED_REF }) }),
            response: { 204: Type.Null(), ...errorResponses, 409: Type.Ref('Problem') },
          },
        },
        async (request, reply) => {
          const { name, ref } = request.params;
          await subscriptions.retryParked(name, parkedRefOf(ref));
          return reply.status(204).send(null);
        },
      );
      app.delete(
        '/api/admin/subscriptions/:name/parked/:ref',
        {
          schema: {
            tags: ['operations'],
            summary: 'Give up on a parked event: it is no longer parked, and the subscriber never handles it',
            description:
              "For an event nothing will ever handle (a subscriber that records facts cannot be replayed to clear it). `ref` is the parked event's `event_id`, or its `position` (409 when it names parked events of several services' logs).",
            params: Type.Object({ name: Type.String({ maxLength: 64 }), ref: Type.String({ pattern: PARKED_REF }) }),
            response: { 204: Type.Null(), ...errorResponses, 409: Type.Ref('Problem') },
          },
        },
        async (request, reply) => {
          const { name, ref } = request.params;
          await subscriptions.discardParked(name, parkedRefOf(ref));
          return reply.status(204).send(null);
        },
      );
    },
  };
}
