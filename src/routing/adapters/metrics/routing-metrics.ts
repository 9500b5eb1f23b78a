import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { AttemptObservation } from '../../application/delivery-worker.js';
import type { DestinationView } from '../../application/destinations.js';

const STATE_VALUE = { closed: 0, half_open: 1, open: 2 } as const;
type AttemptLabels = { rule_id: string; destination_type: string; outcome: string };
/** Gauges collected within this long of each other share one read: they belong to one scrape. */
const SCRAPE_MS = 1000;

/**
 * Delivery metrics: attempts per destination (rule) by outcome (the success rate is delivered / all),
 * a latency histogram per destination type, and the circuits and backlogs, read from the routing
 * tables on each scrape. A series per rule is written only where it says something (an open circuit,
 * a backlog, attempts made): thousands of idle rules made a 9 MB answer that held the thread for a
 * second, at a scrape anyone may ask for. A deleted rule's series go with it.
 */
export function registerRoutingMetrics(
  registry: Registry,
  destinations: () => Promise<DestinationView[]>,
): (a: AttemptObservation) => void {
  const attempts = new Counter({
    name: 'intake_delivery_attempts_total',
    help: 'Delivery attempts per destination (rule) by outcome: delivered, retry, rejected, gone',
    labelNames: ['rule_id', 'destination_type', 'outcome'] as const,
    registers: [registry],
    // The scrape's read of the rules comes first, so a deleted rule's counts are gone from this very answer.
    async collect() {
      await read();
    },
  });
  const duration = new Histogram({
    name: 'intake_delivery_duration_seconds',
    help: 'Time an attempt took, per destination type (per rule: mean_latency_ms of GET /api/routing/destinations)',
    labelNames: ['destination_type'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15],
    registers: [registry],
  });
  // One read of the routing tables serves every gauge of a scrape. When it fails (the database is
  // down), the gauges keep the last values read and intake_routing_metrics_up says they are stale:
  // an empty answer would read as "no circuit open, nothing pending" just when it matters.
  let last: DestinationView[] = [];
  let readOk = true;
  let current: { readonly at: number; readonly views: Promise<DestinationView[]> } | undefined;
  const read = (): Promise<DestinationView[]> => {
    if (current && performance.now() - current.at < SCRAPE_MS) return current.views;
    const views = destinations().then(
      (fresh) => {
        last = fresh;
        readOk = true;
        forgetDeletedRules(fresh);
        return fresh;
      },
      () => {
        readOk = false;
        return last;
      },
    );
    current = { at: performance.now(), views };
    return views;
  };
  // The labels of each rule's attempt series, by outcome, to remove with the rule (the counter's own
  // list would run its collect, and with it this read).
  const countedRules = new Map<string, Map<string, AttemptLabels>>();
  const forgetDeletedRules = (views: readonly DestinationView[]) => {
    const live = new Set(views.map((d) => d.ruleId));
    for (const [ruleId, series] of countedRules) {
      if (live.has(ruleId)) continue;
      for (const labels of series.values()) attempts.remove(labels);
      countedRules.delete(ruleId);
    }
  };
  new Gauge({
    name: 'intake_routing_metrics_up',
    help: '1 when the routing gauges below were read from the database at this scrape; 0 when they are the last values read',
    registers: [registry],
    async collect() {
      await read();
      this.set(readOk ? 1 : 0);
    },
  });
  new Gauge({
    name: 'intake_delivery_success_ratio',
    help: 'Share of attempts delivered per destination (rule), since the rule was made or its destination last changed',
    labelNames: ['rule_id'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const d of await read())
        if (d.tally && d.tally.attempts > 0) this.set({ rule_id: d.ruleId }, d.tally.delivered / d.tally.attempts);
    },
  });
  new Gauge({
    name: 'intake_circuit_state',
    help: 'Circuit breaker per destination (rule) whose circuit is not closed: 1 half-open, 2 open (absent: closed)',
    labelNames: ['rule_id'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const d of await read()) if (d.circuit.state !== 'closed') this.set({ rule_id: d.ruleId }, STATE_VALUE[d.circuit.state]);
    },
  });
  new Gauge({
    name: 'intake_circuits_open',
    help: 'Destinations whose circuit is open or half-open',
    registers: [registry],
    async collect() {
      this.set((await read()).filter((d) => d.circuit.state !== 'closed').length);
    },
  });
  new Gauge({
    name: 'intake_delivery_pending',
    help: 'Deliveries waiting per destination (rule) that has any (absent: none)',
    labelNames: ['rule_id'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const d of await read()) if (d.pending > 0) this.set({ rule_id: d.ruleId }, d.pending);
    },
  });
  return (a) => {
    const labels: AttemptLabels = { rule_id: a.ruleId, destination_type: a.destinationType, outcome: a.outcome };
    attempts.inc(labels);
    let series = countedRules.get(a.ruleId);
    if (!series) countedRules.set(a.ruleId, (series = new Map()));
    series.set(`${a.destinationType} ${a.outcome}`, labels);
    duration.observe({ destination_type: a.destinationType }, a.durationMs / 1000);
  };
}
