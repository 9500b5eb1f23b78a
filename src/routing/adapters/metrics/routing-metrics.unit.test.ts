import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { DestinationView } from '../../application/destinations.js';
import { closedBreaker } from '../../domain/circuit-breaker.js';
import { registerRoutingMetrics } from './routing-metrics.js';

const openDestination: DestinationView = {
  ruleId: 'r1',
  appId: 'shop',
  ruleName: 'hooks',
  destinationType: 'webhook',
  isActive: true,
  conditionError: null,
  circuit: { ...closedBreaker, state: 'open', failures: 3 },
  pending: 7,
  tally: { attempts: 4, delivered: 1, failed: 3, totalDurationMs: 40 },
};

describe('routing gauges', () => {
  it('read the routing tables once per scrape', async () => {
    const registry = new Registry();
    let reads = 0;
    registerRoutingMetrics(registry, () => {
      reads += 1;
      return Promise.resolve([openDestination]);
    });
    const text = await registry.metrics();
    expect(reads).toBe(1);
    expect(text).toContain('intake_circuits_open 1');
    expect(text).toContain('intake_delivery_pending{rule_id="r1"} 7');
  });

  it('keep the last values and say they are stale while the tables cannot be read', async () => {
    const registry = new Registry();
    let down = false;
    registerRoutingMetrics(registry, () => (down ? Promise.reject(new Error('connection refused')) : Promise.resolve([openDestination])));
    expect(await registry.metrics()).toContain('intake_routing_metrics_up 1');

    down = true;
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const stale = await registry.metrics();
    expect(stale).toContain('intake_routing_metrics_up 0');
    expect(stale).toContain('intake_circuits_open 1');
    expect(stale).toContain('intake_circuit_state{rule_id="r1"} 2');
    expect(stale).toContain('intake_delivery_pending{rule_id="r1"} 7');
  });

  it('write a series per rule only where it says something, and forget a deleted rule', async () => {
    const registry = new Registry();
    const idle: DestinationView = { ...openDestination, ruleId: 'idle', circuit: closedBreaker, pending: 0, tally: undefined };
    let views = [openDestination, idle];
    const observe = registerRoutingMetrics(registry, () => Promise.resolve(views));
    observe({ ruleId: 'r1', destinationType: 'webhook', outcome: 'delivered', durationMs: 12, replayJobId: null });
    const text = await registry.metrics();
    expect(text).not.toContain('rule_id="idle"');
    expect(text).toContain('intake_delivery_attempts_total{rule_id="r1",destination_type="webhook",outcome="delivered"} 1');
    expect(text).toContain('intake_delivery_duration_seconds_count{destination_type="webhook"} 1');

    views = [idle];
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect(await registry.metrics()).not.toContain('rule_id="r1"');
  });
});
