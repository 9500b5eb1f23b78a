import { jetstream, jetstreamManager, JetStreamApiError } from '@nats-io/jetstream';
import {
  AuthorizationError,
  connect,
  headers as natsHeaders,
  InvalidArgumentError,
  PermissionViolationError,
  RequestError,
  TimeoutError,
  type NatsConnection,
} from '@nats-io/transport-node';
import { natsServerOptions } from '../../../shared/messaging/nats/nats-server-options.js';
import type { DeliveryRequest, QueuePublisher, QueueTarget } from '../../application/destination.js';
import { MAX_BROKER_NAME_BYTES } from '../../domain/destination-config.js';
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

export interface NatsQueuePublisherOptions {
  /** Used when a target names no URL. */
  readonly url?: string;
  readonly connectTimeoutMs?: number;
  /** How long to wait for the stream's acknowledgement; past it the connection is dropped as dead. */
  readonly publishTimeoutMs?: number;
}

/** A concrete subject: dot-separated tokens, no wildcards, no whitespace. */
const PUBLISHABLE_SUBJECT = /^[^\s.*>]+(\.[^\s.*>]+)*$/;

/**
 * Publishes to a JetStream stream and answers `delivered` only on the stream's acknowledgement.
 * The delivery id is the `Nats-Msg-Id`, so a retried publish within the stream's duplicate window is
 * stored once. A connection on which an acknowledgement did not come in time is closed, and the next
 * publish connects anew: a half-open socket, or a proxy that keeps it open after its backend failed
 * over, never closes by itself, and until the client's pings gave up on it (minutes) every publish on
 * it timed out. The server's answers (no stream, a permission refused) keep the connection.
 */
export function natsQueuePublisher(options: NatsQueuePublisherOptions = {}): QueuePublisher {
  const connectTimeoutMs = options.connectTimeoutMs ?? 2000;
  const publishTimeoutMs = options.publishTimeoutMs ?? 5000;
  const connections = connectionCache<NatsConnection>(
    async (url, forget) => {
      // Only the servers the URL names, which the address policy checked: a broker may advertise others
      // (`connect_urls`), and a reconnect would resolve a name again. A lost connection is closed, and
      // the next publish connects anew after the policy's check.
      const connection = await connect({
        ...natsServerOptions(url),
        timeout: connectTimeoutMs,
        name: 'intake-routing',
        ignoreClusterUpdates: true,
        reconnect: false,
      });
      void connection.closed().then(forget);
      return connection;
    },
    (connection) => connection.close(),
  );

  async function publish(target: QueueTarget, request: DeliveryRequest): Promise<PublishResult> {
    if (target.broker !== 'nats') return rejected(`the NATS publisher cannot publish to a ${target.broker} destination`);
    const url = brokerUrl(target, options.url);
    if (typeof url !== 'string') return url;
    if (!PUBLISHABLE_SUBJECT.test(target.subject)) return rejected(`"${target.subject}" is not a subject one can publish to`);
    // Rules saved before the limit: such a publish made the server close the connection other rules share.
    if (Buffer.byteLength(target.subject) > MAX_BROKER_NAME_BYTES)
      return rejected(`the subject is longer than ${MAX_BROKER_NAME_BYTES} bytes, which a publish cannot carry safely`);

    let connection: NatsConnection;
    try {
      connection = await connections.get(url);
    } catch (error) {
      if (error instanceof AuthorizationError) return refusedAll(`NATS at ${redactUrl(url)} refused the credentials: ${error.message}`);
      return retry(`NATS at ${redactUrl(url)} is unreachable: ${describeError(error)}`);
    }
    try {
      await jetstream(connection, { timeout: publishTimeoutMs }).publish(target.subject, request.body, {
        msgID: request.deliveryId,
        headers: metadataHeaders(request),
      });
      return delivered;
    } catch (error) {
      // No acknowledgement: the next publish must not wait on this connection too. Closing it sends nothing.
      if (error instanceof TimeoutError) connections.discard(url, connection);
      if (isNoResponders(error)) return explainNoStream(connection, target.subject, publishTimeoutMs);
      if (error instanceof PermissionViolationError) return refusedAll(`not permitted to publish to ${target.subject}: ${error.message}`);
      // Raised before sending, e.g. a body larger than the server's max_payload: it will not shrink.
      if (error instanceof InvalidArgumentError) return rejected(`the message cannot be published: ${error.message}`);
      if (error instanceof JetStreamApiError && PERMANENT_API_ERRORS.has(error.code)) {
        return rejected(`the stream refused the message: ${describeError(error)}`);
      }
      return retry(`publishing to ${target.subject} failed: ${describeError(error)}`);
    }
  }

  return {
    publish: (target, request) => measured(() => publish(target, request)),
    close: () => connections.closeAll(),
  };
}

/** Errors that the same message would meet again however long we wait. */
const PERMANENT_API_ERRORS = new Set([
  10054, // message size exceeds the stream's maximum
]);

/** Consumers can route or filter without parsing the body. */
function metadataHeaders(request: DeliveryRequest) {
  const headers = natsHeaders();
  headers.set('Intake-Event-Id', request.eventId);
  headers.set('Intake-Event-Type', request.eventType);
  headers.set('Intake-App-Id', request.appId);
  return headers;
}

/** No one answered the publish: either no stream captures the subject, or JetStream itself is off. */
function isNoResponders(error: unknown): boolean {
  const cause = error instanceof Error ? error.cause : undefined;
  return (error instanceof Error && error.name === 'JetStreamNotEnabled') || (cause instanceof RequestError && cause.isNoResponders());
}

/**
 * Tells the two apart: a missing stream is a configuration mistake (rejected), while a stream that
 * exists but did not answer (leader election, restart) is worth retrying.
 */
async function explainNoStream(connection: NatsConnection, subject: string, timeoutMs: number): Promise<PublishResult> {
  try {
    const manager = await jetstreamManager(connection, { timeout: timeoutMs });
    const stream = await manager.streams.find(subject);
    return retry(`stream ${stream} captures ${subject} but did not acknowledge the message`);
  } catch (error) {
    if (error instanceof Error && error.name === 'JetStreamNotEnabled') return rejected('JetStream is not enabled on this NATS server');
    if (error instanceof JetStreamApiError && error.message.includes('no stream matches subject')) {
      return rejected(`no JetStream stream captures the subject ${subject}: create one before routing to it`);
    }
    return retry(`no answer to a publish on ${subject}, and looking for its stream failed: ${describeError(error)}`);
  }
}
