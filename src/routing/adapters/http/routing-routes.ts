import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { refuseBody } from '../../../shared/http/no-body.js';
import { Type } from 'typebox';
import { OPTIONAL_BODY } from '../../../shared/http/schemas.js';
import type { HttpContext } from '../../../shared/http/http-context.js';
import { errorResponses, JsonObjectSchema, pageBody, PageQuery, PageSchema } from '../../../shared/http/schemas.js';
import { pageRequestOf, type Page, type PageRequest } from '../../../shared/pagination.js';
import type { DestinationView } from '../../application/destinations.js';
import { MAX_RULES_PER_APPLICATION, type CreatedRule, type RulePatch } from '../../application/manage-rules.js';
import type { RuleView } from '../../application/condition-errors.js';
import {
  deliveryState,
  type Attempt,
  type Delivery,
  type DeliveryFilter,
  type DeliverySummary,
  type ReplayJob,
} from '../../application/ports.js';
import type { ReplayProgress } from '../../application/replay-jobs.js';
import type { TestSendResult } from '../../application/test-send.js';
import type { Breaker } from '../../domain/circuit-breaker.js';
import type { RuleInput } from '../../domain/routing-rule.js';

/** A created or replaced rule as shown: with its condition's state, and its secret when one was made. */
type CreatedView = Omit<CreatedRule, 'rule'> & { readonly rule: RuleView };

export interface RoutingHandlers {
  create(input: RuleInput): Promise<CreatedView>;
  update(ruleId: string, input: RuleInput): Promise<CreatedView>;
  patch(ruleId: string, patch: RulePatch): Promise<CreatedView>;
  /** The rule with its destination's circuit breaker. */
  get(ruleId: string): Promise<RuleView & { circuit: Breaker }>;
  listByApp(appId: string, page: PageRequest): Promise<Page<RuleView>>;
  /** Switches the rule to `to`, or to the other state when `to` is absent. */
  toggle(ruleId: string, to?: boolean): Promise<RuleView>;
  remove(ruleId: string): Promise<void>;
  rotateSecret(ruleId: string): Promise<string>;
  deliveries(filter: DeliveryFilter, page: PageRequest): Promise<Page<DeliverySummary>>;
  delivery(deliveryId: string): Promise<{ delivery: Delivery; attempts: readonly Attempt[] }>;
  replay(deliveryId: string): Promise<Delivery>;
  replayDeadLetters(ruleId: string | undefined): Promise<{ replayed: number; skipped: number }>;
  destinations(page: PageRequest): Promise<Page<DestinationView>>;
  test(ruleId: string): Promise<TestSendResult>;
  startReplay(ruleId: string, input: { from: string; to: string; reevaluate?: boolean; fresh_ids?: boolean }): Promise<ReplayJob>;
  replayProgress(ruleId: string, jobId: string): Promise<ReplayProgress>;
  replays(ruleId: string, page: PageRequest): Promise<Page<ReplayJob>>;
  cancelReplay(ruleId: string, jobId: string): Promise<ReplayProgress>;
}

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);
const CircuitSchema = Type.Object({
  state: Type.String({ description: 'closed | open | half_open' }),
  failures: Type.Integer({ description: 'Consecutive failures' }),
  next_probe_at: Nullable(Type.String()),
  opened_at: Nullable(Type.String()),
});
const DestinationSchema = Type.Object({
  rule_id: Type.String(),
  app_id: Type.String(),
  rule_name: Type.String(),
  destination_type: Type.String(),
  is_active: Type.Boolean({
    description: 'The rule’s own switch; a rule whose condition cannot run stays active for what it matched before',
  }),
  condition_error: Nullable(
    Type.String({ description: 'Why the rule’s condition cannot run under today’s limits (it matches no new event); null when it runs' }),
  ),
  circuit: CircuitSchema,
  pending: Type.Integer(),
  attempts: Type.Integer({
    description:
      'Attempts to the rule’s current destination, since the rule was made or its destination last changed, by every process ' +
      '(stored, so a restart keeps them); a row written to a database destination counts as one delivered attempt of 0 ms',
  }),
  delivered: Type.Integer(),
  failed: Type.Integer(),
  success_rate: Nullable(Type.Number()),
  mean_latency_ms: Nullable(Type.Number()),
});
const ReplayCounts = Type.Object({
  pending: Type.Integer(),
  succeeded: Type.Integer(),
  dead_lettered: Type.Integer(),
  cancelled: Type.Integer(),
});
const ReplaySchema = Type.Object({
  job_id: Type.String(),
  rule_id: Type.String(),
  from: Type.String(),
  to: Type.String(),
  reevaluate: Type.Boolean(),
  fresh_ids: Type.Boolean(),
  status: Type.String({ description: 'running | completed | cancelled | failed' }),
  total: Nullable(Type.Integer()),
  scanned: Type.Integer({ description: 'Events of the window taken so far' }),
  scheduled: Type.Integer(),
  error: Nullable(Type.String()),
  created_at: Type.String(),
  updated_at: Type.String(),
  finished_at: Nullable(Type.String()),
  deliveries: Type.Optional(ReplayCounts),
});
const circuitBody = (b: Breaker) => ({ state: b.state, failures: b.failures, next_probe_at: b.nextProbeAt, opened_at: b.openedAt });
const destinationBody = (d: DestinationView) => ({
  rule_id: d.ruleId,
  app_id: d.appId,
  rule_name: d.ruleName,
  destination_type: d.destinationType,
  is_active: d.isActive,
  condition_error: d.conditionError,
  circuit: circuitBody(d.circuit),
  pending: d.pending,
  attempts: d.tally?.attempts ?? 0,
  delivered: d.tally?.delivered ?? 0,
  failed: d.tally?.failed ?? 0,
  success_rate: d.tally && d.tally.attempts > 0 ? d.tally.delivered / d.tally.attempts : null,
  mean_latency_ms: d.tally && d.tally.attempts > 0 ? d.tally.totalDurationMs / d.tally.attempts : null,
});
const replayBody = (job: ReplayJob, counts?: ReplayProgress['deliveries']) => ({
  job_id: job.jobId,
  rule_id: job.ruleId,
  from: job.from,
  to: job.to,
  reevaluate: job.reevaluate,
  fresh_ids: job.freshIds,
  status: job.status,
  total: job.total,
  scanned: job.scanned,
  scheduled: job.scheduled,
  error: job.error,
  created_at: job.createdAt,
  updated_at: job.updatedAt,
  finished_at: job.finishedAt,
  ...(counts ? { deliveries: counts } : {}),
});

const AnyObject = JsonObjectSchema;
const DestinationConfigSchema = Type.Unsafe<Record<string, unknown>>({
  type: 'object',
  additionalProperties: true,
  description:
    'Credentials (each webhook header value, the password of a queue broker’s `url`) are sealed when saved and shown as ' +
    '`••••••` from then on; sent back as `••••••`, one keeps its value',
});
const DELIVERY_STATES = ['pending', 'retrying', 'succeeded', 'dead_lettered', 'cancelled'] as const;
const Priority = Type.Integer({ minimum: -1_000_000, maximum: 1_000_000, description: 'Higher runs first' });
const RuleFieldsBody = {
  app_id: Type.Union([Type.String({ minLength: 1, maxLength: 255 }), Type.Integer()]),
  rule_name: Type.String(),
  event_type_filter: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  condition: Type.Optional(
    Type.Union([AnyObject, Type.Null()], { description: 'MongoDB-style query over {event_type, payload, metadata, app_id}' }),
  ),
  destination_type: Type.String({ description: 'webhook | database | queue' }),
  destination_config: Type.Optional(DestinationConfigSchema),
  priority: Type.Optional(Priority),
  is_active: Type.Optional(
    Type.Boolean({ description: 'Default true on creation; a replacement (PUT) without it keeps the current value' }),
  ),
  ordering_key: Type.Optional(
    Type.Union([Type.String({ maxLength: 256 }), Type.Null()], {
      description: 'A path such as payload.customer_id: deliveries with the same value go one at a time, in log order',
    }),
  ),
};
const RuleBody = Type.Object(RuleFieldsBody, { additionalProperties: false });
// A rule as a GET answered it may be sent back changed: the fields only the answer has are ignored.
const READ_ONLY_RULE_FIELDS = ['rule_id', 'created_at', 'updated_at', 'condition_error', 'circuit'] as const;
const ignored = Type.Optional(Type.Unknown({ description: 'Ignored: read-only, so that an answer can be sent back changed' }));
const RuleReplaceBody = Type.Object(
  { ...RuleFieldsBody, ...Object.fromEntries(READ_ONLY_RULE_FIELDS.map((name) => [name, ignored])) },
  { additionalProperties: false },
);
// Every field but app_id, each optional: the ones given replace the rule's.
const RulePatchBody = Type.Object(
  {
    rule_name: Type.Optional(Type.String()),
    event_type_filter: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    condition: Type.Optional(Type.Union([AnyObject, Type.Null()])),
    destination_type: Type.Optional(Type.String({ description: 'webhook | database | queue' })),
    destination_config: Type.Optional(DestinationConfigSchema),
    priority: Type.Optional(Priority),
    is_active: Type.Optional(Type.Boolean()),
    ordering_key: RuleFieldsBody.ordering_key,
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
    destination_config: DestinationConfigSchema,
    priority: Type.Integer(),
    is_active: Type.Boolean(),
    ordering_key: Type.Union([Type.String(), Type.Null()]),
    condition_error: Nullable(
      Type.String({
        description:
          'Null when the condition runs. Otherwise why today’s limits refuse it (a rule saved by an older release): the rule ' +
          'is not evaluated and matches no event until its condition is replaced with PUT',
      }),
    ),
    created_at: Type.String({ format: 'date-time' }),
    updated_at: Type.String({ format: 'date-time' }),
    // The destination's circuit breaker, on the GET of one rule.
    circuit: Type.Optional(CircuitSchema),
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
        description:
          'pending (not attempted yet) | retrying (an attempt failed, another is scheduled) | succeeded | dead_lettered | cancelled (a replay job withdrew it)',
      },
    ),
    webhook_id: Type.String({ description: 'The id receivers see; a replay keeps the original unless asked for fresh ids' }),
    ordering_key: Nullable(Type.String()),
    replay_job_id: Nullable(Type.String()),
    attempts: Type.Integer(),
    next_attempt_at: Type.Union([Type.String(), Type.Null()]),
    last_error: Type.Union([Type.String(), Type.Null()], {
      description:
        'The latest failure; on a dead letter, why it was given up (for example "HTTP 500 (gave up after 8 attempts)"). Each attempt’s own error is in the attempt log',
    }),
    created_at: Type.String(),
    updated_at: Type.String(),
  },
  { $id: 'Delivery' },
);
const AttemptSchema = Type.Object({
  attempt: Type.Integer(),
  at: Type.String({
    description: 'When the attempt was sent (its outcome came `duration_ms` later); for one never sent, when it was recorded',
  }),
  outcome: Type.String(),
  status_code: Type.Union([Type.Integer(), Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  duration_ms: Type.Number(),
});

const RuleParams = Type.Object({ rule_id: Type.String({ maxLength: 64 }) });
const toInput = (body: { app_id: string | number } & Omit<RuleInput, 'app_id'>): RuleInput => {
  const input: Record<string, unknown> = { ...body, app_id: String(body.app_id) };
  for (const name of READ_ONLY_RULE_FIELDS) delete input[name];
  return input as unknown as RuleInput;
};
const deliveryBody = (d: DeliverySummary) => ({
  delivery_id: d.deliveryId,
  rule_id: d.ruleId,
  event_id: d.itemId,
  app_id: d.appId,
  event_type: d.eventType,
  destination_type: d.destinationType,
  status: deliveryState(d),
  webhook_id: d.webhookId,
  ordering_key: d.orderingKey,
  replay_job_id: d.replayJobId,
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
const createdBody = (created: CreatedView) => ({
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
        {
          schema: {
            tags,
            summary: 'Create a routing rule',
            description: `An application has ${MAX_RULES_PER_APPLICATION} rules at most, disabled ones counted: past them, 409 \`routing.too-many-rules\`.`,
            body: RuleBody,
            response: { 201: CreatedRuleSchema, ...errorResponses, 409: Type.Ref('Problem') },
          },
        },
        async (request, reply) => reply.status(201).send(createdBody(await handlers.create(toInput(request.body)))),
      );
      app.get(
        '/api/routing-rules/app/:app_id',
        {
          schema: {
            tags,
            summary: "An application's rules, highest priority first",
            description:
              'Paged: `limit` (default 100, at most 1000) and `cursor` (the `next_cursor` of the previous page). Rules of equal ' +
              'priority come oldest first. A rule whose priority changes while a client pages moves to its new place.',
            params: Type.Object({ app_id: Type.String({ maxLength: 255 }) }),
            querystring: PageQuery,
            response: { 200: PageSchema(Type.Ref('RoutingRule')), ...errorResponses },
          },
        },
        async (request) => pageBody(await handlers.listByApp(request.params.app_id, pageRequestOf(request.query)), (rule) => rule),
      );
      app.get(
        '/api/routing-rules/:rule_id',
        { schema: { tags, summary: 'Get a rule', params: RuleParams, response: { 200: Type.Ref('RoutingRule'), ...errorResponses } } },
        async (request) => {
          const { circuit, ...rule } = await handlers.get(request.params.rule_id);
          return { ...rule, circuit: circuitBody(circuit) };
        },
      );
      app.put(
        '/api/routing-rules/:rule_id',
        {
          schema: {
            tags,
            summary: 'Replace a rule',
            description:
              'Every field is replaced, except `is_active`, which keeps its value unless given. A rule whose destination ' +
              'changes starts with a closed circuit.',
            params: RuleParams,
            body: RuleReplaceBody,
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
            description: 'To the state `is_active` names, or, without a body, to the other one.',
            [OPTIONAL_BODY]: true,
            params: RuleParams,
            body: Type.Optional(Type.Object({ is_active: Type.Optional(Type.Boolean()) }, { additionalProperties: false })),
            response: { 200: Type.Ref('RoutingRule'), ...errorResponses },
          },
          // `curl -X PATCH …/toggle` sends no body at all.
          preValidation: async (request) => {
            request.body ??= {};
          },
        },
        async (request) => handlers.toggle(request.params.rule_id, request.body?.is_active),
      );
      app.post(
        '/api/routing-rules/:rule_id/rotate-secret',
        {
          preValidation: refuseBody,
          schema: {
            tags,
            summary: "Replace a webhook rule's signing secret",
            description:
              'The new secret signs every attempt from now on, including retries; it is shown only in this response. For 24 hours ' +
              'the secret it replaces signs beside it (`webhook-signature: v1,<new> v1,<old>`), so receivers can switch without failing.',
            params: RuleParams,
            response: { 200: Type.Object({ signing_secret: Type.String() }), ...errorResponses },
          },
        },
        async (request) => ({ signing_secret: await handlers.rotateSecret(request.params.rule_id) }),
      );

      app.post(
        '/api/routing-rules/:rule_id/test',
        {
          preValidation: refuseBody,
          schema: {
            tags,
            summary: 'Send a signed test event to the rule’s destination',
            description: 'Outside the delivery queue: no retry, no effect on the circuit breaker. Answers what the receiver did.',
            params: RuleParams,
            response: {
              200: Type.Object({
                message_id: Type.String(),
                delivered: Type.Boolean(),
                outcome: Type.String({ description: 'delivered | retry | rejected | gone' }),
                status_code: Nullable(Type.Integer()),
                latency_ms: Type.Number(),
                error: Nullable(Type.String()),
              }),
              ...errorResponses,
            },
          },
        },
        async (request) => {
          const { messageId, outcome } = await handlers.test(request.params.rule_id);
          return {
            message_id: messageId,
            delivered: outcome.outcome === 'delivered',
            outcome: outcome.outcome,
            status_code: outcome.statusCode ?? null,
            latency_ms: outcome.durationMs,
            error: 'reason' in outcome ? outcome.reason : null,
          };
        },
      );
      app.post(
        '/api/routing-rules/:rule_id/replay',
        {
          schema: {
            tags,
            summary: 'Send again every event the rule matched in a window of time',
            description:
              'Creates a tracked job. Delivered events are included. Webhooks keep the webhook-id receivers saw before unless fresh_ids; reevaluate applies the rule’s current condition to the window’s events instead. One replay per rule at a time (409).',
            params: RuleParams,
            body: Type.Object(
              {
                from: Type.String({ format: 'date-time' }),
                to: Type.String({ format: 'date-time' }),
                reevaluate: Type.Optional(Type.Boolean()),
                fresh_ids: Type.Optional(Type.Boolean()),
              },
              { additionalProperties: false },
            ),
            response: { 202: ReplaySchema, ...errorResponses, 409: Type.Ref('Problem') },
          },
        },
        async (request, reply) => reply.status(202).send(replayBody(await handlers.startReplay(request.params.rule_id, request.body))),
      );
      app.get(
        '/api/routing-rules/:rule_id/replays',
        {
          schema: {
            tags,
            summary: 'The rule’s replay jobs, newest first',
            description:
              'Paged: `limit` (default 100, at most 1000) and `cursor` (the `next_cursor` of the previous page). Jobs started ' +
              'in the same millisecond come by job id, descending.',
            params: RuleParams,
            querystring: PageQuery,
            response: { 200: PageSchema(ReplaySchema), ...errorResponses },
          },
        },
        async (request) => pageBody(await handlers.replays(request.params.rule_id, pageRequestOf(request.query)), (job) => replayBody(job)),
      );
      const ReplayParams = Type.Object({ rule_id: Type.String({ maxLength: 64 }), job_id: Type.String({ maxLength: 64 }) });
      app.get(
        '/api/routing-rules/:rule_id/replays/:job_id',
        {
          schema: {
            tags,
            summary: 'A replay job and its progress',
            params: ReplayParams,
            response: { 200: ReplaySchema, ...errorResponses },
          },
        },
        async (request) => {
          const { job, deliveries } = await handlers.replayProgress(request.params.rule_id, request.params.job_id);
          return replayBody(job, deliveries);
        },
      );
      app.post(
        '/api/routing-rules/:rule_id/replays/:job_id/cancel',
        {
          preValidation: refuseBody,
          schema: {
            tags,
            summary: 'Cancel a replay job: what is not being sent yet is withdrawn',
            params: ReplayParams,
            response: { 200: ReplaySchema, ...errorResponses },
          },
        },
        async (request) => {
          const { job, deliveries } = await handlers.cancelReplay(request.params.rule_id, request.params.job_id);
          return replayBody(job, deliveries);
        },
      );
      app.get(
        '/api/routing/destinations',
        {
          schema: {
            tags,
            summary: 'Each rule’s destination with its circuit breaker, backlog and success rate, by rule id',
            description: 'Paged: `limit` (default 100, at most 1000) and `cursor` (the `next_cursor` of the previous page).',
            querystring: PageQuery,
            response: { 200: PageSchema(DestinationSchema), ...errorResponses },
          },
        },
        async (request) => pageBody(await handlers.destinations(pageRequestOf(request.query)), destinationBody),
      );

      app.get(
        '/api/routing/deliveries',
        {
          schema: {
            tags,
            summary: 'Deliveries of an event or of a rule, newest first',
            description: 'Paged: `limit` (default 100, at most 1000) and `cursor` (the `next_cursor` of the previous page).',
            querystring: Type.Intersect([
              PageQuery,
              Type.Object({
                event_id: Type.Optional(Type.String({ maxLength: 64 })),
                rule_id: Type.Optional(Type.String({ maxLength: 64 })),
                status: Type.Optional(Type.Union(DELIVERY_STATES.map((state) => Type.Literal(state)))),
              }),
            ]),
            response: { 200: PageSchema(Type.Ref('Delivery')), ...errorResponses },
          },
        },
        async (request) => {
          const { event_id: itemId, rule_id: ruleId, status } = request.query;
          return pageBody(await handlers.deliveries({ itemId, ruleId, status }, pageRequestOf(request.query)), deliveryBody);
        },
      );
      app.get(
        '/api/routing/dead-letters',
        {
          schema: {
            tags,
            summary: 'Dead-lettered deliveries, newest first',
            description: 'Paged: `limit` (default 100, at most 1000) and `cursor` (the `next_cursor` of the previous page).',
            querystring: Type.Intersect([PageQuery, Type.Object({ rule_id: Type.Optional(Type.String({ maxLength: 64 })) })]),
            response: { 200: PageSchema(Type.Ref('Delivery')), ...errorResponses },
          },
        },
        async (request) =>
          pageBody(
            await handlers.deliveries({ ruleId: request.query.rule_id, status: 'dead_lettered' }, pageRequestOf(request.query)),
            deliveryBody,
          ),
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
          preValidation: refuseBody,
          schema: {
            tags,
            summary: 'Send a dead-lettered delivery again (same delivery id)',
            description:
              'The retry schedule starts over: a receiver still down gets every retry again before the delivery is dead-lettered ' +
              'anew. Attempt numbers go on from the earlier ones, which stay in the attempt log. A delivery that is not ' +
              'dead-lettered (pending, retrying or succeeded) answers 409.',
            params: Type.Object({ delivery_id: Type.String({ maxLength: 64 }) }),
            response: { 202: Type.Ref('Delivery'), ...errorResponses, 409: Type.Ref('Problem') },
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
            description:
              'Each starts the retry schedule over, as a replay of one delivery does. A `rule_id` that names no rule answers 404; a deleted or disabled rule answers 400, as for a replay of the rule. Without one, the dead letters of deleted or disabled rules are skipped.',
            [OPTIONAL_BODY]: true,
            body: Type.Optional(Type.Object({ rule_id: Type.Optional(Type.String({ maxLength: 64 })) }, { additionalProperties: false })),
            response: {
              202: Type.Object({
                replayed: Type.Integer(),
                skipped: Type.Integer({ description: 'Dead letters of deleted or disabled rules, left as they are' }),
              }),
              ...errorResponses,
            },
          },
          // Of every rule: `curl -X POST …/dead-letters/replay` sends no body at all.
          preValidation: async (request) => {
            request.body ??= {};
          },
        },
        async (request, reply) => reply.status(202).send(await handlers.replayDeadLetters(request.body?.rule_id)),
      );
    },
  };
}
