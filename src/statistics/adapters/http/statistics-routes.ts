import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { refuseBody } from '../../../shared/http/no-body.js';
import { Type } from 'typebox';
import type { HttpContext } from '../../../shared/http/http-context.js';
import { errorResponses, PageQuery } from '../../../shared/http/schemas.js';
import { DEFAULT_PAGE_SIZE, type Page, type PageRequest } from '../../../shared/pagination.js';
import type { ApplicationTotals } from '../../application/ports.js';
import { MAX_DASHBOARD_EVENT_TYPES, type Dashboard, type StatisticsQuery } from '../../application/queries.js';
import type { RefreshResult } from '../../application/refresh-statistics.js';
import { TIME_PERIODS, type TimePeriod } from '../../domain/buckets.js';
import type { BucketCounters, Counters } from '../../domain/counters.js';

export interface StatisticsHandlers {
  statistics(query: StatisticsQuery, page: PageRequest): Promise<Page<BucketCounters>>;
  dashboard(appId: string, period: TimePeriod, bucketCount?: number): Promise<Dashboard>;
  refresh(appId: string): Promise<RefreshResult>;
  applications(page: PageRequest): Promise<Page<ApplicationTotals>>;
}

const counterProperties = {
  total_events: Type.Integer({ minimum: 0, description: 'Items received; always processed + failed + pending' }),
  processed_events: Type.Integer({ minimum: 0 }),
  failed_events: Type.Integer({ minimum: 0, description: 'Invalid, or failed in processing' }),
  pending_events: Type.Integer({ minimum: 0, description: 'Received, neither processed nor failed yet' }),
};
const StatisticsCounters = Type.Object(counterProperties, { $id: 'StatisticsCounters' });

const TimePeriodSchema = Type.Union(
  TIME_PERIODS.map((period) => Type.Literal(period)),
  { description: 'Bucket size, in UTC; weeks start on Monday' },
);
const AppId = Type.Object({ app_id: Type.String({ minLength: 1, maxLength: 255, description: "The application (an item's partner_id)" }) });
const BucketStart = Type.String({ format: 'date-time', description: 'Start of the bucket (UTC)' });

const BucketsQuery = Type.Intersect([
  PageQuery,
  Type.Object({
    time_period: Type.Optional(TimePeriodSchema),
    event_type: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'Only this event type' })),
    from: Type.Optional(Type.String({ format: 'date-time', description: 'Buckets from the one holding this instant' })),
    to: Type.Optional(Type.String({ format: 'date-time', description: 'Buckets starting before this instant (exclusive)' })),
  }),
]);
const BucketsPage = Type.Object({
  app_id: Type.String(),
  time_period: TimePeriodSchema,
  buckets: Type.Array(Type.Object({ bucket_start: BucketStart, event_type: Type.String(), ...counterProperties })),
  next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `cursor` for the next page; null on the last page' }),
});

const MAX_DASHBOARD_BUCKETS = 500;
const DashboardQuery = Type.Object({
  time_period: Type.Optional(TimePeriodSchema),
  buckets: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: MAX_DASHBOARD_BUCKETS,
      description: 'How many buckets, ending with the current one (default 48 hourly, 30 daily, 12 weekly)',
    }),
  ),
});
const DashboardBody = Type.Object({
  app_id: Type.String(),
  time_period: TimePeriodSchema,
  totals: Type.Ref('StatisticsCounters'),
  event_types: Type.Integer({ minimum: 0, description: 'How many event types the application has items of' }),
  by_event_type: Type.Array(Type.Object({ event_type: Type.String(), ...counterProperties }), {
    maxItems: MAX_DASHBOARD_EVENT_TYPES,
    description: `The ${MAX_DASHBOARD_EVENT_TYPES} event types with the most items at most (ties go to the first by name), in order of name`,
  }),
  other_event_types: Type.Ref('StatisticsCounters', { description: 'Summed over the event types `by_event_type` leaves out' }),
  buckets: Type.Array(
    Type.Object({
      bucket_start: BucketStart,
      ...counterProperties,
      by_event_type: Type.Record(Type.String(), Type.Integer(), {
        description: 'total_events per event type of the top-level by_event_type',
      }),
    }),
  ),
});

const RefreshBody = Type.Object({
  app_id: Type.String(),
  up_to_position: Type.Union([Type.Integer(), Type.Null()], {
    description: 'The event store was read up to this position; null in distributed mode, where the role recounts its own tallies',
  }),
  items: Type.Integer({ description: "The application's items found" }),
  totals: Type.Ref('StatisticsCounters'),
  refreshed_at: Type.String({ format: 'date-time' }),
});

const ApplicationsPage = Type.Object({
  items: Type.Array(Type.Object({ app_id: Type.String(), ...counterProperties })),
  next_cursor: Type.Union([Type.String(), Type.Null()]),
});

const countersBody = (c: Counters) => ({
  total_events: c.totalEvents,
  processed_events: c.processedEvents,
  failed_events: c.failedEvents,
  pending_events: c.pendingEvents,
});

const pageRequest = (query: { limit?: number; cursor?: string }): PageRequest => ({
  limit: query.limit ?? DEFAULT_PAGE_SIZE,
  cursor: query.cursor,
});

const DEFAULT_PERIOD: TimePeriod = 'daily';

/** Statistics of SPEC.md section 5: pre-aggregated counters per application, event type and bucket. */
export function statisticsHttp(handlers: StatisticsHandlers): HttpContext {
  return {
    schemas: [StatisticsCounters],
    routes: async (scope) => {
      const app = scope.withTypeProvider<TypeBoxTypeProvider>();

      app.get(
        '/api/statistics/apps',
        {
          schema: {
            tags: ['statistics'],
            summary: 'Applications that have statistics, with their all-time totals',
            querystring: PageQuery,
            response: { 200: ApplicationsPage, ...errorResponses },
          },
        },
        async (request) => {
          const page = await handlers.applications(pageRequest(request.query));
          return { items: page.items.map((a) => ({ app_id: a.appId, ...countersBody(a.counters) })), next_cursor: page.nextCursor };
        },
      );

      app.get(
        '/api/statistics/dashboard/:app_id',
        {
          schema: {
            tags: ['statistics'],
            summary: "An application's totals across event types, per event type, and its latest buckets",
            description:
              '`totals` and `by_event_type` cover all time. `buckets` are a fixed window of `time_period` buckets (default ' +
              'daily) ending with the current one: 48 hours, 30 days or 12 weeks, oldest first, each summed across event ' +
              `types, and empty buckets listed with zeros. The breakdown per event type (\`by_event_type\`, at the top and in ` +
              `each bucket) names the ${MAX_DASHBOARD_EVENT_TYPES} busiest types at most; \`other_event_types\` sums the rest, ` +
              'and `GET /api/statistics/{app_id}` pages through the counters of every type.',
            params: AppId,
            querystring: DashboardQuery,
            response: { 200: DashboardBody, ...errorResponses },
          },
        },
        async (request) => {
          const period = (request.query.time_period ?? DEFAULT_PERIOD) as TimePeriod;
          const dashboard = await handlers.dashboard(request.params.app_id, period, request.query.buckets);
          return {
            app_id: dashboard.appId,
            time_period: dashboard.period,
            totals: countersBody(dashboard.totals),
            event_types: dashboard.eventTypes,
            other_event_types: countersBody(dashboard.otherEventTypes),
            by_event_type: dashboard.byEventType.map((t) => ({ event_type: t.eventType, ...countersBody(t.counters) })),
            buckets: dashboard.buckets.map((b) => ({
              bucket_start: b.bucketStart,
              ...countersBody(b.counters),
              by_event_type: { ...b.byEventType },
            })),
          };
        },
      );

      app.post(
        '/api/statistics/refresh/:app_id',
        {
          preValidation: refuseBody,
          schema: {
            tags: ['statistics'],
            summary: "Recompute an application's statistics from the event store",
            description:
              'Reads the whole event store up to its head, recomputes the application’s counters, and replaces them in one ' +
              'transaction; answers once done. Work of the statistics subscriber after the position read is kept. One ' +
              'refresh runs at a time: another is refused with 409 while it does. A replay of the statistics subscriber ' +
              'that begins during a refresh rebuilds the counters itself: the refresh then changes nothing and answers 409.',
            params: AppId,
            response: { 200: RefreshBody, ...errorResponses, 409: Type.Ref('Problem') },
          },
        },
        async (request) => {
          const result = await handlers.refresh(request.params.app_id);
          return {
            app_id: result.appId,
            up_to_position: result.upToPosition,
            items: result.items,
            totals: countersBody(result.totals),
            refreshed_at: result.refreshedAt,
          };
        },
      );

      app.get(
        '/api/statistics/:app_id',
        {
          schema: {
            tags: ['statistics'],
            summary: "An application's counters per bucket and event type",
            description:
              'One entry per bucket and event type, in order of `bucket_start` then `event_type` (default period: daily). ' +
              'Buckets in which the application received nothing are omitted, not listed with zeros. `from` selects ' +
              'buckets from the one holding that instant; `to` is exclusive. Every item counts in the bucket of its ' +
              '`received_at`. An application literally named `apps` is shadowed by `GET /api/statistics/apps`.',
            params: AppId,
            querystring: BucketsQuery,
            response: { 200: BucketsPage, ...errorResponses },
          },
        },
        async (request) => {
          const period = (request.query.time_period ?? DEFAULT_PERIOD) as TimePeriod;
          const page = await handlers.statistics(
            {
              appId: request.params.app_id,
              period,
              eventType: request.query.event_type,
              from: request.query.from,
              to: request.query.to,
            },
            pageRequest(request.query),
          );
          return {
            app_id: request.params.app_id,
            time_period: period,
            buckets: page.items.map((b) => ({ bucket_start: b.bucketStart, event_type: b.eventType, ...countersBody(b.counters) })),
            next_cursor: page.nextCursor,
          };
        },
      );
    },
  };
}
