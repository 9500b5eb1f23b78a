import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { AttemptObservation } from '../../application/delivery-worker.js';
import type { DestinationView } from '../../application/destinations.js';

const STATE_VALUE = { closed: 0, half_open: 1, open: 2 } as const;

/**
 * Per-destination delivery metrics: attempts by outcome (the success rate is
 * delivered / all), a latency histogram, and the circuits, read from the routing tables on each scrape.
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
  });
  const duration = new Histogram({
    name: 'intake_delivery_duration_seconds',
    help: 'Time an attempt took, per destination (rule)',
    labelNames: ['rule_id', 'destination_type'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15],
    registers: [registry],
  });
  const read = async () => {
    try {
      return await destinations();
    } catch {
      return [];
    }
  };
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
    help: 'Circuit breaker per destination (rule): 0 closed, 1 half-open, 2 open',
    labelNames: ['rule_id'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const d of await read()) this.set({ rule_id: d.ruleId }, STATE_VALUE[d.circuit.state]);
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
    help: 'Deliveries waiting per destination (rule)',
    labelNames: ['rule_id'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const d of await read()) this.set({ rule_id: d.ruleId }, d.pending);
    },
  });
  return (a) => {
    attempts.inc({ rule_id: a.ruleId, destination_type: a.destinationType, outcome: a.outcome });
    duration.observe({ rule_id: a.ruleId, destination_type: a.destinationType }, a.durationMs / 1000);
  };
}
