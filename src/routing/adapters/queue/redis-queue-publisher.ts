import { Redis } from 'ioredis';
import type { DeliveryRequest, QueuePublisher, QueueTarget } from '../../application/destination.js';
import { connectionCache } from './connection-cache.js';
import {
  brokerUrl,
  delivered,
  describeError,
  measured,
  redactUrl,
  refusedAll,
  rejected,
  retry,
  type PublishResult,
} from './publish-outcome.js';

export interface RedisQueuePublisherOptions {
  /** Used when a target names no URL. */
  readonly url?: string;
  readonly connectTimeoutMs?: number;
  /** How long to wait for the XADD reply; past it the connection is dropped as dead. */
  readonly publishTimeoutMs?: number;
}

/** Server replies that clear up by themselves: loading, failover, memory pressure. */
const TRANSIENT_REPLY = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY|OOM|NOREPLICAS)\b/;
const AUTH_REPLY = /^(NOAUTH|WRONGPASS|NOPERM)\b/;

/**
 * Appends to a Redis stream: `XADD <stream> * delivery_id … event_type … app_id … body …`.
 * The reply (the entry id) is the confirmation. Commands are never queued while disconnected and
 * the client never reconnects on its own: a broken connection is dropped and reopened on the next
 * publish, which answers `retry` meanwhile. So is a connection on which an XADD got no reply in time
 * or failed short of a server reply: a half-open socket, or a proxy that keeps it open after its
 * backend failed over, never closes, and timed out every XADD until Intake restarted. A server reply
 * (WRONGTYPE, LOADING) keeps the connection.
 */
export function redisQueuePublisher(options: RedisQueuePublisherOptions = {}): QueuePublisher {
  const connectTimeoutMs = options.connectTimeoutMs ?? 2000;
  const publishTimeoutMs = options.publishTimeoutMs ?? 5000;
  const connections = connectionCache<Redis>(
    async (url, forget) => {
      const redis = new Redis(url, {
        lazyConnect: true,
        connectTimeout: connectTimeoutMs,
        commandTimeout: publishTimeoutMs,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      // Failures reach us through the commands that fail; without a listener they would be logged raw.
      // The first one is kept: a failed connect() only says "Connection is closed".
      let connectError: unknown;
      redis.on('error', (error: unknown) => {
        connectError ??= error;
      });
      redis.on('end', forget);
      try {
        await redis.connect();
      } catch (error) {
        redis.disconnect();
        throw connectError ?? error;
      }
      return redis;
    },
    async (redis) => {
      await redis.quit();
    },
    // QUIT would wait for a reply that does not come.
    { abandon: (redis) => redis.disconnect() },
  );

  async function publish(target: QueueTarget, request: DeliveryRequest): Promise<PublishResult> {
    if (target.broker !== 'redis') return rejected(`the Redis publisher cannot publish to a ${target.broker} destination`);
    const url = brokerUrl(target, options.url);
    if (typeof url !== 'string') return url;
    if (target.stream === '') return rejected('the stream name is empty');

    let redis: Redis;
    try {
      redis = await connections.get(url);
    } catch (error) {
      if (isReply(error, AUTH_REPLY)) return refusedAll(`Redis at ${redactUrl(url)} refused the credentials: ${describeError(error)}`);
      return retry(`Redis at ${redactUrl(url)} is unreachable: ${describeError(error)}`);
    }
    try {
      await redis.xadd(
        target.stream,
        '*',
        'delivery_id',
        request.deliveryId,
        'event_type',
        request.eventType,
        'app_id',
        request.appId,
        'body',
        request.body,
      );
      return delivered;
    } catch (error) {
      // A server reply such as WRONGTYPE (the key is not a stream) will not change by retrying.
      if (isReply(error) && !isReply(error, TRANSIENT_REPLY))
        return rejected(`XADD to ${target.stream} was refused: ${describeError(error)}`);
      // No reply at all (a timeout, a closed socket): the next publish must not wait on this connection.
      if (!isReply(error)) connections.discard(url, redis);
      return retry(`XADD to ${target.stream} failed: ${describeError(error)}`);
    }
  }

  return {
    publish: (target, request) => measured(() => publish(target, request)),
    close: () => connections.closeAll(),
  };
}

/** An error the Redis server answered, as opposed to a connection failure or a timeout. */
function isReply(error: unknown, matching?: RegExp): boolean {
  return error instanceof Error && error.name === 'ReplyError' && (matching === undefined || matching.test(error.message));
}
