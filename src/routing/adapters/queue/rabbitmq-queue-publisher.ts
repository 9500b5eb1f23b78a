import { Duplex } from 'node:stream';
import { connect, type ChannelModel, type ConfirmChannel, type Message } from 'amqplib';
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
  PublishTimeoutError,
  withTimeout,
  type PublishResult,
} from './publish-outcome.js';

export interface RabbitmqQueuePublisherOptions {
  /** Used when a target names no URL. */
  readonly url?: string;
  readonly connectTimeoutMs?: number;
  /** How long to wait for the broker's confirm, or for a channel to open; past it the connection is dropped as dead. */
  readonly publishTimeoutMs?: number;
  /** Channels (one per exchange) kept open on a connection at once. */
  readonly maxChannels?: number;
}

/** AMQP reply codes that mean the destination, not the moment, is wrong. */
const NOT_FOUND = 404;
const ACCESS_REFUSED = 403;
const PERMANENT_REPLY_CODES = new Set([NOT_FOUND, ACCESS_REFUSED, 406 /* precondition failed */]);
/** An AMQP short string (the `type` property among them) holds at most this many bytes. */
const MAX_SHORT_STRING_BYTES = 255;

/**
 * Publishes through a confirm channel and answers `delivered` only once the broker confirmed the
 * message. Messages are `mandatory`: one that no queue takes comes back, and is not reported delivered.
 * A connection on which a confirm, or a channel, did not come in time is dropped and its socket
 * destroyed, and the next publish connects anew: a half-open socket, or a proxy that keeps it open
 * after its backend failed over, never closes by itself, and until the heartbeat gave up on it (a
 * minute by default) every publish on it timed out. The broker's refusals (a missing exchange, a
 * nack) keep the connection.
 */
export function rabbitmqQueuePublisher(options: RabbitmqQueuePublisherOptions = {}): QueuePublisher {
  const connectTimeoutMs = options.connectTimeoutMs ?? 2000;
  const publishTimeoutMs = options.publishTimeoutMs ?? 10_000;
  const sessions = connectionCache<RabbitSession>(
    async (url, forget) => {
      const connection = await connect(url, { timeout: connectTimeoutMs });
      connection.on('close', forget);
      // 'error' is always followed by 'close'; without a listener it would crash the process.
      connection.on('error', () => undefined);
      return rabbitSession(connection, options.maxChannels ?? MAX_OPEN_CHANNELS);
    },
    (session) => session.connection.close(),
    { abandon },
  );

  async function publish(target: QueueTarget, request: DeliveryRequest): Promise<PublishResult> {
    if (target.broker !== 'rabbitmq') return rejected(`the RabbitMQ publisher cannot publish to a ${target.broker} destination`);
    const url = brokerUrl(target, options.url);
    if (typeof url !== 'string') return url;
    // Rules saved before the limit: AMQP cannot encode a longer name, and no retry changes that.
    for (const [what, name] of [
      ['exchange', target.exchange],
      ['routing key', target.routing_key],
    ] as const)
      if (Buffer.byteLength(name) > MAX_BROKER_NAME_BYTES)
        return rejected(`the ${what} is longer than AMQP's ${MAX_BROKER_NAME_BYTES} bytes`);

    let session: RabbitSession | undefined;
    let channel: ConfirmableChannel;
    try {
      session = await sessions.get(url);
      channel = await withTimeout(
        session.channel(target.exchange),
        publishTimeoutMs,
        `RabbitMQ did not open a channel within ${publishTimeoutMs} ms`,
      );
    } catch (error) {
      if (error instanceof PublishTimeoutError && session !== undefined) sessions.discard(url, session);
      if (error instanceof Error && /ACCESS[-_]REFUSED/.test(error.message)) {
        return refusedAll(`RabbitMQ at ${redactUrl(url)} refused the credentials: ${error.message}`);
      }
      if (error instanceof Error && /No channels left/.test(error.message)) {
        return retry(`RabbitMQ at ${redactUrl(url)} has no channel left for exchange '${target.exchange}': ${error.message}`);
      }
      return retry(`RabbitMQ at ${redactUrl(url)} is unreachable: ${describeError(error)}`);
    }
    const where = `exchange '${target.exchange}' with routing key '${target.routing_key}'`;
    try {
      const routed = await withTimeout(
        channel.publishConfirmed(target.exchange, target.routing_key, Buffer.from(request.body), {
          messageId: request.deliveryId,
          persistent: true,
          contentType: 'application/json',
          // The AMQP `type` holds 255 bytes; an event type of 128 characters may take 512. The header holds any.
          ...(Buffer.byteLength(request.eventType) <= MAX_SHORT_STRING_BYTES ? { type: request.eventType } : {}),
          headers: { 'intake-event-id': request.eventId, 'intake-app-id': request.appId, 'intake-event-type': request.eventType },
        }),
        publishTimeoutMs,
        `RabbitMQ did not confirm within ${publishTimeoutMs} ms`,
      );
      // A queue may be bound later, so an unroutable message is worth retrying rather than final.
      return routed ? delivered : retry(`no queue is bound to ${where}: the message was returned`);
    } catch (error) {
      // No confirm: the next publish must not wait on this connection too.
      if (error instanceof PublishTimeoutError) sessions.discard(url, session);
      const closedBy = channel.closeError();
      if (closedBy !== undefined && isAbout(closedBy, target.exchange)) {
        if (closedBy.code === NOT_FOUND) return rejected(`exchange '${target.exchange}' does not exist: ${closedBy.message}`);
        if (closedBy.code === ACCESS_REFUSED) return refusedAll(`publishing to ${where} was refused: ${closedBy.message}`);
        if (PERMANENT_REPLY_CODES.has(closedBy.code)) return rejected(`publishing to ${where} was refused: ${closedBy.message}`);
      }
      return retry(`publishing to ${where} failed: ${closedBy ? `${closedBy.code} ${closedBy.message}` : describeError(error)}`);
    }
  }

  return {
    publish: (target, request) => measured(() => publish(target, request)),
    close: () => sessions.closeAll(),
  };
}

/**
 * Destroys the socket under the session's connection, which fails what is in flight on it and closes
 * it: a polite close would wait for the broker's close-ok, which a dead connection never sends.
 * amqplib keeps the socket as `stream`, outside its typings: should that change, the polite close.
 */
function abandon(session: RabbitSession): void {
  const inner = session.connection.connection;
  const socket = 'stream' in inner ? inner.stream : undefined;
  if (socket instanceof Duplex) socket.destroy(new Error('RabbitMQ stopped answering'));
  else void session.connection.close().catch(() => undefined);
}

interface RabbitSession {
  readonly connection: ChannelModel;
  /**
   * The confirm channel of an exchange, reopened when the broker closed the previous one. One per
   * exchange: the broker closes a channel on a publish to an exchange that does not exist, failing
   * every publish in flight on it, and one rule's missing exchange opened other rules' circuits.
   */
  channel(exchange: string): Promise<ConfirmableChannel>;
}

interface ChannelError {
  readonly code: number;
  readonly message: string;
}

interface ConfirmableChannel {
  /** Resolves true once confirmed and routed, false once confirmed but returned as unroutable. */
  publishConfirmed(exchange: string, routingKey: string, body: Buffer, options: PublishOptions): Promise<boolean>;
  /** Why the broker closed this channel, if it did: it closes channels on errors such as a missing exchange. */
  closeError(): ChannelError | undefined;
  /** Publishes sent and not yet confirmed. */
  inFlight(): number;
  close(): void;
}

type PublishOptions = Parameters<ConfirmChannel['publish']>[3] & { readonly messageId: string };

/**
 * Channels kept open at once, the exchanges published to last: a broker allows a connection 2,047 by
 * default, and exchanges come and go with the rules that name them.
 */
const MAX_OPEN_CHANNELS = 256;

function rabbitSession(connection: ChannelModel, maxChannels: number): RabbitSession {
  // In the order of use, the least recent first.
  const channels = new Map<string, { readonly opening: Promise<ConfirmableChannel>; opened?: ConfirmableChannel }>();
  /** Closes the least recently used channels past the bound, leaving those with publishes in flight. */
  const evict = () => {
    for (const [exchange, entry] of channels) {
      if (channels.size <= maxChannels) return;
      if (entry.opened === undefined || entry.opened.inFlight() > 0) continue;
      channels.delete(exchange);
      entry.opened.close();
    }
  };
  return {
    connection,
    channel(exchange) {
      const current = channels.get(exchange);
      if (current !== undefined) {
        channels.delete(exchange);
        channels.set(exchange, current);
        return current.opening;
      }
      // Forgotten only if still current: a late close of an older channel must not drop a newer one.
      const forget = () => {
        if (channels.get(exchange) === entry) channels.delete(exchange);
      };
      const entry: { readonly opening: Promise<ConfirmableChannel>; opened?: ConfirmableChannel } = {
        opening: confirmableChannel(connection, forget),
      };
      entry.opening.then((opened) => (entry.opened = opened), forget);
      channels.set(exchange, entry);
      evict();
      return entry.opening;
    },
  };
}

async function confirmableChannel(connection: ChannelModel, onClose: () => void): Promise<ConfirmableChannel> {
  const channel = await connection.createConfirmChannel();
  let closedBy: ChannelError | undefined;
  // basic.return reaches us before the confirm of the same message, so the confirm callback can
  // tell whether its message came back. Counted, in case the same id is published twice at once.
  const returned = new Map<string, number>();
  channel.on('return', (message: Message) => {
    const id = String(message.properties.messageId);
    returned.set(id, (returned.get(id) ?? 0) + 1);
  });
  channel.on('error', (error: unknown) => {
    closedBy = channelError(error);
  });
  channel.on('close', onClose);

  const takeReturned = (id: string) => {
    const count = returned.get(id) ?? 0;
    if (count <= 1) returned.delete(id);
    else returned.set(id, count - 1);
    return count > 0;
  };

  let inFlight = 0;
  return {
    closeError: () => closedBy,
    inFlight: () => inFlight,
    close: () => void channel.close().catch(() => undefined),
    publishConfirmed: (exchange, routingKey, body, options) =>
      new Promise<boolean>((resolve, reject) => {
        inFlight += 1;
        channel.publish(exchange, routingKey, body, { ...options, mandatory: true }, (error) => {
          const wasReturned = takeReturned(options.messageId);
          if (error !== null && error !== undefined) reject(error instanceof Error ? error : new Error(String(error)));
          else resolve(!wasReturned);
        });
      }).finally(() => (inFlight -= 1)),
  };
}

function channelError(error: unknown): ChannelError | undefined {
  if (!(error instanceof Error) || !('code' in error) || typeof error.code !== 'number') return undefined;
  return { code: error.code, message: error.message };
}

/** A closed channel fails every publish in flight: only the one naming our exchange is ours. */
function isAbout(error: ChannelError, exchange: string): boolean {
  return error.message.includes(`'${exchange}'`);
}
