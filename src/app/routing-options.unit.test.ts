import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';
import { routingOptionsFrom } from './routing-options.js';

const workerIdOf = (env: Record<string, string>) =>
  routingOptionsFrom(loadConfig({ ADMIN_TOKEN: 'a-test-admin-token-long-enough', LOG_LEVEL: 'silent', ...env }), async () => true).workerId;

describe('the routing worker’s name', () => {
  it('is fixed for the one embedded process, so a restart takes back its attempts', () => {
    expect(workerIdOf({ DATABASE_URL: 'sqlite:///tmp/intake-worker-id.db' })).toBe('embedded');
    expect(workerIdOf({ DATABASE_URL: 'postgres://127.0.0.1/intake' })).toBe('embedded');
  });

  it('is each replica’s own in the distributed mode, every role in one process included', () => {
    const distributed = { DATABASE_URL: 'postgres://127.0.0.1/intake', NATS_URL: 'nats://127.0.0.1:4222' };
    expect(workerIdOf(distributed)).toMatch(new RegExp(`-${process.pid}$`));
    expect(workerIdOf({ ...distributed, ROLE: 'routing' })).toMatch(new RegExp(`-${process.pid}$`));
    expect(workerIdOf({ ...distributed, ROUTING_WORKER_ID: 'routing-a' })).toBe('routing-a');
  });
});

describe('the retention of delivery history', () => {
  it('is DELIVERY_RETENTION_DAYS in the routing context, in both modes; 0 keeps deliveries for ever', () => {
    const retentionOf = (env: Record<string, string>) =>
      routingOptionsFrom(loadConfig({ ADMIN_TOKEN: 'a-test-admin-token-long-enough', LOG_LEVEL: 'silent', ...env }), async () => true)
        .deliveryRetentionMs;
    expect(retentionOf({ DATABASE_URL: 'sqlite:///tmp/intake-retention.db' })).toBe(30 * 24 * 3600_000);
    expect(
      retentionOf({ DATABASE_URL: 'postgres://127.0.0.1/intake', NATS_URL: 'nats://127.0.0.1:4222', DELIVERY_RETENTION_DAYS: '2' }),
    ).toBe(2 * 24 * 3600_000);
    expect(retentionOf({ DELIVERY_RETENTION_DAYS: '0' })).toBe(0);
  });
});
