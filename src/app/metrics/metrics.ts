import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { SubscriberStatus } from '../../shared/subscriptions/in-process-subscriptions.js';

export type HttpLabels = 'route' | 'method' | 'status';

/** The service's own metrics, in one registry per process (a test may build several side by side). */
export interface IntakeMetrics {
  readonly registry: Registry;
  readonly httpRequests: Counter<HttpLabels>;
  readonly httpRequestDuration: Histogram<HttpLabels>;
  /** Incremented from the event store's onAppended (see countAppendedEvents). */
  readonly eventsAppended: Counter;
  /** Observed from the event store's onBatch: how many appends each group commit wrote. */
  readonly groupCommitBatchSize: Histogram;
  /** Webhook and queue deliveries by outcome (succeeded, failed, dead_lettered). */
  readonly deliveries: Counter<'outcome'>;
  /** Metrics kept in another thread of this process (the storage thread), merged into the exposition. */
  readonly elsewhere?: () => Promise<Array<MetricObjectWithValues<MetricValue<string>>>>;
  /** Events consumed from the broker for the first time, by subscriber: replicas of a role show their share. */
  readonly eventsConsumed: Counter<'subscriber'>;
  /** Requests that waited for the subscribers before appending (flow control), and how long in all. */
  readonly heldRequests: Counter;
  readonly heldSeconds: Counter;
}

export interface MetricsOptions {
  /** Read on each scrape, for the subscribers' lag and parked events. */
  readonly subscriberStatus?: () => Promise<readonly SubscriberStatus[]>;
  /** Process metrics (CPU, memory, event loop lag, GC); on by default. */
  readonly processMetrics?: boolean;
}

export function createMetrics(options: MetricsOptions = {}): IntakeMetrics {
  const registry = new Registry();
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });

  const httpRequests = new Counter({
    name: 'intake_http_requests_total',
    help: 'HTTP requests answered, by route template, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  });
  const httpRequestDuration = new Histogram({
    name: 'intake_http_request_duration_seconds',
    help: 'Time from receiving a request to the end of its response, by route template, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const eventsAppended = new Counter({
    name: 'intake_events_appended_total',
    help: 'Events appended to the event store',
    registers: [registry],
  });
  const groupCommitBatchSize = new Histogram({
    name: 'intake_group_commit_batch_size',
    help: 'Appends written by one group commit of single appends (an item or event without an idempotency key); batches, keyed requests and SDK messages commit outside it',
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000],
    registers: [registry],
  });
  const deliveries = new Counter({
    name: 'intake_deliveries_total',
    help: 'Deliveries to routing destinations, by outcome',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });

  const eventsConsumed = new Counter({
    name: 'intake_bus_events_consumed_total',
    help: 'Events this process consumed from the broker and committed for the first time, by subscriber (distributed mode)',
    labelNames: ['subscriber'] as const,
    registers: [registry],
  });

  const heldRequests = new Counter({
    name: 'intake_flow_control_held_requests_total',
    help: 'Requests that waited before appending because the subscribers trailed the log by more than SUBSCRIBER_BACKLOG_LIMIT',
    registers: [registry],
  });
  const heldSeconds = new Counter({
    name: 'intake_flow_control_held_seconds_total',
    help: 'Time requests spent waiting for the subscribers before appending',
    registers: [registry],
  });

  const subscriberStatus = options.subscriberStatus;
  if (subscriberStatus) {
    const safely = async (): Promise<readonly SubscriberStatus[]> => {
      try {
        return await subscriberStatus();
      } catch {
        // A scrape during shutdown must not fail the whole exposition: the gauges are left empty.
        return [];
      }
    };
    new Gauge({
      name: 'intake_subscriber_lag_events',
      help: 'Events between a subscriber’s checkpoint and the head of the log',
      labelNames: ['subscriber'] as const,
      registers: [registry],
      async collect() {
        this.reset();
        for (const s of await safely()) this.set({ subscriber: s.name }, s.lag);
      },
    });
    new Gauge({
      name: 'intake_subscriber_parked_events',
      help: 'Events a subscriber parked because it failed on them',
      labelNames: ['subscriber'] as const,
      registers: [registry],
      async collect() {
        this.reset();
        for (const s of await safely()) this.set({ subscriber: s.name }, s.parked);
      },
    });
  }

  return {
    registry,
    httpRequests,
    httpRequestDuration,
    eventsAppended,
    groupCommitBatchSize,
    deliveries,
    eventsConsumed,
    heldRequests,
    heldSeconds,
  };
}

/**
 * A listener for the event store's onAppended, which reports the new head rather than a count:
 * the events appended are the distance from the previous head.
 */
export function countAppendedEvents(counter: Counter, startHead: number): (head: number) => void {
  let lastHead = startHead;
  return (head) => {
    if (head > lastHead) counter.inc(head - lastHead);
    lastHead = Math.max(lastHead, head);
  };
}
