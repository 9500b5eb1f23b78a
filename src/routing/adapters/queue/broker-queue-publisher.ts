import type { QueuePublisher, QueueTarget } from '../../application/destination.js';
import { natsQueuePublisher } from './nats-queue-publisher.js';
import { measured, rejected } from './publish-outcome.js';
import { rabbitmqQueuePublisher } from './rabbitmq-queue-publisher.js';
import { redisQueuePublisher } from './redis-queue-publisher.js';

export interface BrokerQueuePublisherOptions {
  /** Broker URLs for targets that name none (NATS_URL, RABBITMQ_URL, REDIS_URL). */
  readonly defaults?: {
    readonly natsUrl?: string | undefined;
    readonly rabbitmqUrl?: string | undefined;
    readonly redisUrl?: string | undefined;
  };
  readonly connectTimeoutMs?: number;
  readonly publishTimeoutMs?: number;
}

/**
 * The queue destination: hands each publish to the publisher of the target's broker. Nothing
 * connects until a rule first publishes to a broker.
 */
export function brokerQueuePublisher(options: BrokerQueuePublisherOptions = {}): QueuePublisher {
  const { defaults = {}, ...timeouts } = options;
  const publishers: Record<QueueTarget['broker'], QueuePublisher> = {
    nats: natsQueuePublisher({ ...timeouts, url: defaults.natsUrl }),
    rabbitmq: rabbitmqQueuePublisher({ ...timeouts, url: defaults.rabbitmqUrl }),
    redis: redisQueuePublisher({ ...timeouts, url: defaults.redisUrl }),
  };
  return {
    publish(target, request) {
      // Targets come from stored JSON: a broker this build does not know is a configuration error.
      const publisher = Object.hasOwn(publishers, target.broker) ? publishers[target.broker] : undefined;
      if (publisher === undefined) return measured(async () => rejected(`unknown broker "${String(target.broker)}"`));
      return publisher.publish(target, request);
    },
    async close() {
      await Promise.all(Object.values(publishers).map((publisher) => publisher.close()));
    },
  };
}
