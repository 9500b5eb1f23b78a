import { hostname } from 'node:os';
import { parseBreakerPolicy } from '../routing/domain/circuit-breaker.js';
import { parseRetrySchedule } from '../routing/domain/delivery.js';
import { addressCheckedQueuePublisher } from '../routing/adapters/queue/broker-address-policy.js';
import { resolveSecretKey } from '../routing/adapters/secrets/secret-box.js';
import { brokerQueuePublisher } from '../routing/adapters/queue/broker-queue-publisher.js';
import { parseAllowedHosts } from '../routing/adapters/webhook/destination-policy.js';
import { undiciWebhookSender } from '../routing/adapters/webhook/undici-webhook-sender.js';
import type { RoutingOptions } from '../routing/module.js';
import type { Config } from './config.js';

/** The destination adapters and delivery policy of the routing context, from the configuration. */
export function routingOptionsFrom(
  config: Config,
  applicationExists: RoutingOptions['applicationExists'],
  onOutcome?: RoutingOptions['onOutcome'],
): RoutingOptions {
  const allowedHosts = parseAllowedHosts(config.webhookAllowedHosts);
  return {
    webhooks: undiciWebhookSender({ allowedHosts }),
    queues: addressCheckedQueuePublisher(
      brokerQueuePublisher({ defaults: { natsUrl: config.natsUrl, rabbitmqUrl: config.rabbitmqUrl, redisUrl: config.redisUrl } }),
      allowedHosts,
      config.queueBrokers,
    ),
    allowedHosts,
    queueBrokers: config.queueBrokers,
    defaultBrokers: new Set([
      ...(config.natsUrl ? (['nats'] as const) : []),
      ...(config.rabbitmqUrl ? (['rabbitmq'] as const) : []),
      ...(config.redisUrl ? (['redis'] as const) : []),
    ]),
    retrySchedule: parseRetrySchedule(config.webhookRetrySchedule),
    applicationExists,
    breakerPolicy: parseBreakerPolicy(config.breakerThreshold, config.breakerCooldownSeconds),
    deliveryConcurrency: config.routingConcurrency,
    // The embedded process is the only worker on its database, so a fixed name lets a restart take
    // back what it had in flight. Distributed replicas (every role in one process included) each need
    // a name of their own, or one would take the others' attempts as its own interrupted ones; a
    // stable one (ROUTING_WORKER_ID) lets a restart take back its attempts at once.
    workerId: config.routingWorkerId ?? (config.roles === 'all' && !config.distributed ? 'embedded' : `${hostname()}-${process.pid}`),
    replayRatePerSecond: config.replayRatePerSecond,
    deliveryRetentionMs: config.deliveryRetentionDays * 24 * 3600_000,
    ...withSecretKey(config),
    ...(onOutcome ? { onOutcome } : {}),
  };
}

/** The key that seals secrets, and the file it was just generated into, if it was. */
function withSecretKey(config: Config): { secretKey: Buffer; secretKeyGeneratedInto?: string } {
  let generatedInto: string | undefined;
  const secretKey = resolveSecretKey(config.secretKey, config.dataDir, (file) => (generatedInto = file));
  return generatedInto === undefined ? { secretKey } : { secretKey, secretKeyGeneratedInto: generatedInto };
}
