import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import type { HttpContext } from '../../../shared/http/http-context.js';
import { errorResponses, PageQuery } from '../../../shared/http/schemas.js';
import { looseBodyCompiler } from '../../../shared/http/strict-parameters.js';
import { DEFAULT_PAGE_SIZE, type PageRequest } from '../../../shared/pagination.js';
import type { ConversionAttribution, ScopeAttribution, VisitorJourney } from '../../application/queries.js';
import type { Scope } from '../../application/ports.js';
import { ATTRIBUTION_MODELS, DEFAULT_MODEL, type AttributionModel, type Credit } from '../../domain/attribution-models.js';
import type { RecordedConversion } from '../../application/record-conversion.js';
import type { RecordConversionCommand } from '../../domain/conversion.js';
import type { Touch } from '../../domain/touch.js';
import { MAX_CONVERSION_VALUE, type ExternalId, type Visitor } from '../../domain/values.js';

export interface AttributionHandlers {
  recordConversion(
    command: RecordConversionCommand,
    context: { correlationId?: string },
    idempotencyKey?: string,
  ): Promise<RecordedConversion>;
  scope(scope: Scope, model: AttributionModel): Promise<ScopeAttribution>;
  visitor(visitor: Visitor, page: PageRequest): Promise<VisitorJourney>;
  conversion(conversionId: string): Promise<ConversionAttribution>;
}

/** The contract as documented in OpenAPI; the edge checks only the envelope, the domain every field (reporting all at once). */
const ConversionBody = Type.Object(
  {
    visitor_id: Type.String({ minLength: 1, maxLength: 255, description: 'The visitor whose touches share the conversion' }),
    value: Type.Number({ minimum: 0, maximum: MAX_CONVERSION_VALUE, description: 'What the conversion brought in' }),
    occurred_at: Type.Optional(
      Type.String({ format: 'date-time', description: 'RFC 3339; defaults to when Intake received the conversion' }),
    ),
  },
  { additionalProperties: false },
);
const ConversionEnvelope = Type.Object(
  { visitor_id: Type.Optional(Type.Unknown()), value: Type.Optional(Type.Unknown()), occurred_at: Type.Optional(Type.Unknown()) },
  { additionalProperties: false },
);
/** `Idempotency-Key`: a retry records nothing again (kept for good). */
const KeyHeader = Type.Object({ 'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 255 })) });

const Recorded = Type.Object({
  conversion_id: Type.String(),
  status: Type.Literal('recorded'),
  message: Type.String(),
  processing_time_ms: Type.Number(),
});

const Model = Type.Union(
  ATTRIBUTION_MODELS.map((model) => Type.Literal(model)),
  { description: `Attribution model (default ${DEFAULT_MODEL})` },
);
const ModelQuery = Type.Object({ model: Type.Optional(Model) });
const Interactions = Type.Object({ click: Type.Integer(), view: Type.Integer(), engagement: Type.Integer() });

const attributionProperties = {
  model: Type.String(),
  interactions: Interactions,
  unique_visitors: Type.Integer(),
  score: Type.Number({ description: 'Interactions weighted by type (ATTRIBUTION_WEIGHTS; default view 1, click 3, engagement 5)' }),
  conversions: Type.Number({ description: 'Conversions credited under the model: fractional under linear and position_based' }),
  attributed_value: Type.Number({ description: 'Conversion value credited under the model' }),
};
const CampaignAttribution = Type.Object({ campaign_id: Type.String(), ...attributionProperties }, { $id: 'CampaignAttribution' });
const PartnerAttribution = Type.Object({ partner_id: Type.String(), ...attributionProperties }, { $id: 'PartnerAttribution' });

const TouchSchema = Type.Object(
  {
    tracking_event_id: Type.String(),
    visitor_id: Type.String({ description: 'Whose touch it is: the visitor asked for, or one of its anonymous ids' }),
    partner_id: Type.String(),
    campaign_id: Type.String(),
    interaction_type: Type.String(),
    occurred_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'AttributionTouch' },
);
const TouchOrNull = Type.Union([Type.Ref('AttributionTouch'), Type.Null()]);
const AppIdOfVisitor = Type.Union([Type.String(), Type.Null()], {
  description: "The application whose SDK users the visitor is one of; null for a visitor of the tracking API's visitor_id",
});
const Journey = Type.Object({
  app_id: AppIdOfVisitor,
  visitor_id: Type.String(),
  anonymous_ids: Type.Array(Type.String(), {
    description:
      "The anonymous ids known to be this SDK user (an anonymousId sent beside the userId, an alias's previousId), and those known to be them along chains of aliases, in order of id: their touches are listed with the user's",
  }),
  first_touch: TouchOrNull,
  last_touch: TouchOrNull,
  conversions: Type.Integer(),
  touches: Type.Array(Type.Ref('AttributionTouch'), { description: 'In the order they occurred' }),
  next_cursor: Type.Union([Type.String(), Type.Null()]),
});

const CreditSchema = Type.Object({ partner_id: Type.String(), campaign_id: Type.String(), share: Type.Number(), value: Type.Number() });
const ConversionCredits = Type.Object({
  conversion_id: Type.String(),
  app_id: AppIdOfVisitor,
  visitor_id: Type.String(),
  value: Type.Number(),
  occurred_at: Type.String({ format: 'date-time' }),
  credits: Type.Object(Object.fromEntries(ATTRIBUTION_MODELS.map((model) => [model, Type.Array(CreditSchema)]))),
});

const Id = Type.String({ minLength: 1, maxLength: 255 });
const VisitorQuery = Type.Object({
  ...PageQuery.properties,
  app_id: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 255,
      description:
        "The application whose SDK user this is (Segment/RudderStack userId or anonymousId); leave it out for the tracking API's visitor_id",
    }),
  ),
});

const attributionBody = (attribution: ScopeAttribution) => ({
  model: attribution.model,
  interactions: { ...attribution.interactions },
  unique_visitors: attribution.uniqueVisitors,
  score: attribution.score,
  conversions: attribution.conversions,
  attributed_value: attribution.attributedValue,
});

const touchBody = (touch: Touch) => ({
  tracking_event_id: touch.trackingEventId,
  visitor_id: touch.visitor.id,
  partner_id: touch.partnerId,
  campaign_id: touch.campaignId,
  interaction_type: touch.interactionType,
  occurred_at: touch.occurredAt,
});

const creditBody = (credit: Credit) => ({
  partner_id: credit.partnerId,
  campaign_id: credit.campaignId,
  share: credit.share,
  value: credit.value,
});

const millis = (elapsed: number) => Math.round(elapsed * 1000) / 1000;

/** Conversions and the attribution read API of SPEC.md section 6. */
export function attributionHttp(handlers: AttributionHandlers): HttpContext {
  return {
    schemas: [CampaignAttribution, PartnerAttribution, TouchSchema],
    routes: async (scope) => {
      const app = scope.withTypeProvider<TypeBoxTypeProvider>();

      app.post(
        '/api/v1/tracking/conversions',
        {
          schema: {
            tags: ['attribution'],
            summary: 'Record a conversion',
            description:
              "Stores the conversion durably before answering. Its credits to the visitor's touches in the lookback window " +
              '(30 days by default) follow within moments, under every attribution model. ' +
              'With an `Idempotency-Key` a retry answers the first conversion (header `Idempotent-Replayed: true`) and records nothing; ' +
              'the key sent with another conversion is refused with 422.',
            headers: KeyHeader,
            body: ConversionBody,
            response: { 201: Recorded, ...errorResponses, 422: Type.Ref('Problem') },
          },
          validatorCompiler: looseBodyCompiler(ConversionEnvelope),
        },
        async (request, reply) => {
          const body = request.body as Static<typeof ConversionEnvelope>;
          const { conversion, replayed } = await handlers.recordConversion(
            { visitorId: body.visitor_id, value: body.value, occurredAt: body.occurred_at },
            { correlationId: request.id },
            request.headers['idempotency-key'],
          );
          if (replayed) reply.header('idempotent-replayed', 'true');
          return reply
            .status(201)
            .header('location', `/api/v1/attribution/conversions/${conversion.id}`)
            .send({
              conversion_id: conversion.id,
              status: 'recorded' as const,
              message: 'Conversion recorded',
              processing_time_ms: millis(reply.elapsedTime),
            });
        },
      );

      app.get(
        '/api/v1/attribution/campaigns/:campaign_id',
        {
          schema: {
            tags: ['attribution'],
            summary: "A campaign's interactions, visitors, score and credited conversions",
            params: Type.Object({ campaign_id: Id }),
            querystring: ModelQuery,
            response: { 200: Type.Ref('CampaignAttribution'), ...errorResponses },
          },
        },
        async (request) => {
          const { campaign_id } = request.params;
          const attribution = await handlers.scope({ kind: 'campaign', id: campaign_id }, request.query.model ?? DEFAULT_MODEL);
          return { campaign_id, ...attributionBody(attribution) };
        },
      );

      app.get(
        '/api/v1/attribution/partners/:partner_id',
        {
          schema: {
            tags: ['attribution'],
            summary: "A partner's interactions, visitors, score and credited conversions, across its campaigns",
            params: Type.Object({ partner_id: Id }),
            querystring: ModelQuery,
            response: { 200: Type.Ref('PartnerAttribution'), ...errorResponses },
          },
        },
        async (request) => {
          const { partner_id } = request.params;
          const attribution = await handlers.scope({ kind: 'partner', id: partner_id }, request.query.model ?? DEFAULT_MODEL);
          return { partner_id, ...attributionBody(attribution) };
        },
      );

      app.get(
        '/api/v1/attribution/visitors/:visitor_id',
        {
          schema: {
            tags: ['attribution'],
            summary: "A visitor's touches in the order they occurred, with the first and last touch",
            description:
              "The visitor_id the tracking API was given, or with `app_id` the user an application's SDK messages named. " +
              'The two are never the same visitor, nor are the users of two applications.',
            params: Type.Object({ visitor_id: Id }),
            querystring: VisitorQuery,
            response: { 200: Journey, ...errorResponses },
          },
        },
        async (request) => {
          const visitor: Visitor = { appId: request.query.app_id ?? null, id: request.params.visitor_id as ExternalId };
          const journey = await handlers.visitor(visitor, {
            limit: request.query.limit ?? DEFAULT_PAGE_SIZE,
            cursor: request.query.cursor,
          });
          return {
            app_id: visitor.appId,
            visitor_id: visitor.id,
            anonymous_ids: journey.anonymousIds.map((anonymous) => anonymous.id),
            first_touch: journey.firstTouch && touchBody(journey.firstTouch),
            last_touch: journey.lastTouch && touchBody(journey.lastTouch),
            conversions: journey.conversions,
            touches: journey.touches.items.map(touchBody),
            next_cursor: journey.touches.nextCursor,
          };
        },
      );

      app.get(
        '/api/v1/attribution/conversions/:conversion_id',
        {
          schema: {
            tags: ['attribution'],
            summary: 'How a conversion was credited under each model',
            params: Type.Object({ conversion_id: Id }),
            response: { 200: ConversionCredits, ...errorResponses },
          },
        },
        async (request) => {
          const { conversion_id } = request.params;
          const { conversion, credits } = await handlers.conversion(conversion_id);
          return {
            conversion_id: conversion.id,
            app_id: conversion.visitor.appId,
            visitor_id: conversion.visitor.id,
            value: conversion.value,
            occurred_at: conversion.occurredAt,
            credits: Object.fromEntries(ATTRIBUTION_MODELS.map((model) => [model, credits[model].map(creditBody)])),
          };
        },
      );
    },
  };
}
