import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { HttpContext } from '../../../app/http/server.js';
import { errorResponses } from '../../../app/http/schemas.js';
import type { CreatedRule, RulePatch } from '../../application/manage-rules.js';
import { deliveryState, type Attempt, type Delivery, type DeliveryFilter, type StoredRule } from '../../application/ports.js';
import type { RuleInput } from '../../domain/routing-rule.js';

export interface RoutingHandlers {
  create(input: RuleInput): Promise<CreatedRule>;
  update(ruleId: string, input: RuleInput): Promise<CreatedRule>;
  patch(ruleId: string, patch: RulePatch): Promise<CreatedRule>;
  get(ruleId: string): Promise<StoredRule>;
  listByApp(appId: string): Promise<StoredRule[]>;
  toggle(ruleId: string): Promise<StoredRule>;
  remove(ruleId: string): Promise<void>;
  rotateSecret(ruleId: string): Promise<string>;
  deliveries(filter: DeliveryFilter): Promise<Delivery[]>;
  delivery(deliveryId: string): Promise<{ delivery: Delivery; attempts: Attempt[] }>;
  replay(deliveryId: string): Promise<Delivery>;
  replayDeadLetters(ruleId: string | undefined): Promise<number>;
}

const AnyObject = Type.Record(Type.String(), Type.Unknown());
const DELIVERY_STATES = ['pending', 'retrying', 'succeeded', 'dead_lettered'] as const;
const RuleBody = Type.Object({
  app_id: Type.Union([Type.String({ minLength: 1, maxLength: 255 }), Type.Integer()]),
  rule_name: Type.String(),
  event_type_filter: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  condition: Type.Optional(
    Type.Union([AnyObject, Type.Null()], { description: 'MongoDB-style query over {event_type, payload, metadata, app_id}' }),
  ),
  destination_type: Type.String({ description: 'webhook | database | queue' }),
  destination_config: Type.Optional(AnyObject),
  priority: Type.Optional(Type.Integer({ description: 'Higher runs first' })),
  is_active: Type.Optional(
    Type.Boolean({ description: 'Default true on creation; a replacement (PUT) without it keeps the current value' }),
  ),
});
// Every field but app_id, each optional: the ones given replace the rule's.
const RulePatchBody = Type.Object(
  {
    rule_name: Type.Optional(Type.String()),
    event_type_filter: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    condition: Type.Optional(Type.Union([AnyObject, Type.Null()])),
    destination_type: Type.Optional(Type.String({ description: 'webhook | database | queue' })),
    destination_config: Type.Optional(AnyObject),
    priority: Type.Optional(Type.Integer({ description: 'Higher runs first' })),
    is_active: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, minProperties: 1 },
);

const Rule = Type.Object(
  {
    rule_id: Type.String(),
    app_id: Type.String(),
    rule_name: Type.String(),
    event_type_filter: Type.Union([Type.String(), Type.Null()]),
    condition: AnyObject,
    destination_type: Type.String(),
    destination_config: AnyObject,
    priority: Type.Integer(),
    is_active: Type.Boolean(),
    created_at: Type.String({ format: 'date-time' }),
    updated_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'RoutingRule' },
);
const CreatedRuleSchema = Type.Intersect([
  Type.Ref('RoutingRule'),
  Type.Object({ signing_secret: Type.Optional(Type.String({ description: 'Webhook rules only, shown only in this response' })) }),
]);

const DeliverySchema = Type.Object(
  {
    delivery_id: Type.String(),
    rule_id: Type.String(),
    event_id: Type.String(),
    app_id: Type.String(),
    event_type: Type.String(),
    destination_type: Type.String(),
    status: Type.Union(
      DELIVERY_STATES.map((state) => Type.Literal(state)),
      {
        description: 'pending (not attempted yet) | retrying (an attempt failed, another is scheduled) | succeeded | dead_lettered',
      },
    ),
    attempts: Type.Integer(),
    next_attempt_at: Type.Union([Type.String(), Type.Null()]),
    last_error: Type.Union([Type.String(), Type.Null()]),
    created_at: Type.String(),
    updated_at: Type.String(),
  },
  { $id: 'Delivery' },
);
const AttemptSchema = Type.Object({
  attempt: Type.Integer(),
  at: Type.String(),
  outcome: Type.String(),
  status_code: Type.Union([Type.Integer(), Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  duration_ms: Type.Number(),
});

const RuleParams = Type.Object({ rule_id: Type.String({ maxLength: 64 }) });
const toInput = (body: { app_id: string | number } & Omit<RuleInput, 'app_id'>): RuleInput => ({ ...body, app_id: String(body.app_id) });
const deliveryBody = (d: Delivery) => ({
  delivery_id: d.deliveryId,
  rule_id: d.ruleId,
  event_id: d.itemId,
  app_id: d.appId,
  event_type: d.eventType,
  destination_type: d.destinationType,
  status: deliveryState(d),
  attempts: d.attempts,
  next_attempt_at: d.nextAttemptAt,
  last_error: d.lastError,
  created_at: d.createdAt,
  updated_at: d.updatedAt,
});
const attemptBody = (a: Attempt) => ({
  attempt: a.attempt,
  at: a.at,
  outcome: a.outcome,
  status_code: a.statusCode,
  error: a.error,
  duration_ms: a.durationMs,
});
const createdBody = (created: CreatedRule) => ({
  ...created.rule,
  ...(created.signingSecret ? { signing_secret: created.signingSecret } : {}),
});

/** Routing rules (SPEC.md section 4) and the deliveries they produce. Admin only. */
export function routingHttp(handlers: RoutingHandlers): HttpContext {
  return {
    schemas: [Rule, DeliverySchema],
    routes: async (scope) => {
      const app = scope.withTypeProvider<TypeBoxTypeProvider>();
      const tags = ['routing'];

      app.post(
        '/api/routing-rules',
        { schema: { tags, summary: 'Create a routing rule', body: RuleBody, response: { 201: CreatedRuleSchema, ...errorResponses } } },
        async (request, reply) => reply.status(201).send(createdBody(await handlers.create(toInput(request.body)))),
      );
      app.get(
        '/api/routing-rules/app/:app_id',
        {
          schema: {
            tags,
            summary: "An application's rules, highest priority first",
            params: Type.Object({ app_id: Type.String({ maxLength: 255 }) }),
            response: { 200: Type.Object({ items: Type.Array(Type.Ref('RoutingRule')) }) },
          },
        },
        async (request) => ({ items: await handlers.listByApp(request.params.app_id) }),
      );
      app.get(
        '/api/routing-rules/:rule_id',
        { schema: { tags, summary: 'Get a rule', params: RuleParams, response: { 200: Type.Ref('RoutingRule'), ...errorResponses } } },
        async (request) => handlers.get(request.params.rule_id),
      );
      app.put(
        '/api/routing-rules/:rule_id',
        {
          schema: {
            tags,
            summary: 'Replace a rule',
            description: 'Every field is replaced, except `is_active`, which keeps its value unless given.',
            params: RuleParams,
            body: RuleBody,
            response: { 200: CreatedRuleSchema, ...errorResponses },
          },
        },
        async (request) => createdBody(await handlers.update(request.params.rule_id, toInput(request.body))),
      );
      app.patch(
        '/api/routing-rules/:rule_id',
        {
          schema: {
            tags,
            summary: 'Change some fields of a rule',
            description:
              'The fields given replace the rule’s; the others stay as they are. The resulting rule is validated as on ' +
              'creation. `app_id` cannot change.',
            params: RuleParams,
            body: RulePatchBody,
            response: { 200: CreatedRuleSchema, ...errorResponses },
          },
        },
        async (request) => createdBody(await handlers.patch(request.params.rule_id, request.body)),
      );
      app.delete(
        '/api/routing-rules/:rule_id',
        { schema: { tags, summary: 'Delete a rule', params: RuleParams, response: { 204: Type.Null(), ...errorResponses } } },
        async (request, reply) => {
          await handlers.remove(request.params.rule_id);
          return reply.status(204).send(null);
        },
      );
      app.patch(
        '/api/routing-rules/:rule_id/toggle',
        {
          schema: {
            tags,
            summary: 'Switch a rule on or off',
            params: RuleParams,
            response: { 200: Type.Ref('RoutingRule'), ...errorResponses },
          },
        },
        async (request) => handlers.toggle(request.params.rule_id),
      );
      app.post(
        '/api/routing-rules/:rule_id/rotate-secret',
        {
          schema: {
            tags,
            summary: "Replace a webhook rule's signing secret",
            description: 'The new secret signs every attempt from now on, including retries; it is shown only in this response.',
            params: RuleParams,
            response: { 200: Type.Object({ signing_secret: Type.String() }), ...errorResponses },
          },
        },
        async (request) => ({ signing_secret: await handlers.rotateSecret(request.params.rule_id) }),
      );

      app.get(
        '/api/routing/deliveries',
        {
          schema: {
            tags,
            summary: 'Deliveries of an event or of a rule, newest first',
            querystring: Type.Object({
              event_id: Type.Optional(Type.String({ maxLength: 64 })),
              rule_id: Type.Optional(Type.String({ maxLength: 64 })),
              status: Type.Optional(Type.Union(DELIVERY_STATES.map((state) => Type.Literal(state)))),
              limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
            }),
            response: { 200: Type.Object({ items: Type.Array(Type.Ref('Delivery')) }), ...errorResponses },
          },
        },
        async (request) => ({
          items: (
            await handlers.deliveries({
              itemId: request.query.event_id,
              ruleId: request.query.rule_id,
              status: request.query.status,
              limit: request.query.limit ?? 100,
            })
          ).map(deliveryBody),
        }),
      );
      app.get(
        '/api/routing/dead-letters',
        {
          schema: {
            tags,
            summary: 'Dead-lettered deliveries, newest first',
            querystring: Type.Object({
              rule_id: Type.Optional(Type.String({ maxLength: 64 })),
              limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
            }),
            response: { 200: Type.Object({ items: Type.Array(Type.Ref('Delivery')) }) },
          },
        },
        async (request) => ({
          items: (
            await handlers.deliveries({ ruleId: request.query.rule_id, status: 'dead_lettered', limit: request.query.limit ?? 100 })
          ).map(deliveryBody),
        }),
      );
      app.get(
        '/api/routing/deliveries/:delivery_id',
        {
          schema: {
            tags,
            summary: 'A delivery with every attempt',
            params: Type.Object({ delivery_id: Type.String({ maxLength: 64 }) }),
            response: {
              200: Type.Intersect([Type.Ref('Delivery'), Type.Object({ attempt_log: Type.Array(AttemptSchema) })]),
              ...errorResponses,
            },
          },
        },
        async (request) => {
          const { delivery, attempts } = await handlers.delivery(request.params.delivery_id);
          return { ...deliveryBody(delivery), attempt_log: attempts.map(attemptBody) };
        },
      );
      app.post(
        '/api/routing/deliveries/:delivery_id/replay',
        {
          schema: {
            tags,
            summary: 'Send a dead-lettered delivery again (same delivery id)',
            params: Type.Object({ delivery_id: Type.String({ maxLength: 64 }) }),
            response: { 202: Type.Ref('Delivery'), ...errorResponses },
          },
        },
        async (request, reply) => reply.status(202).send(deliveryBody(await handlers.replay(request.params.delivery_id))),
      );
      app.post(
        '/api/routing/dead-letters/replay',
        {
          schema: {
            tags,
            summary: 'Send every dead-lettered delivery (of one rule, or all) again',
            body: Type.Optional(Type.Object({ rule_id: Type.Optional(Type.String({ maxLength: 64 })) })),
            response: { 202: Type.Object({ replayed: Type.Integer() }), ...errorResponses },
          },
        },
        async (request, reply) => reply.status(202).send({ replayed: await handlers.replayDeadLetters(request.body?.rule_id) }),
      );
    },
  };
}
