import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  StorageType,
  type ConsumerConfig,
  type ConsumerInfo,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import {
  ClosedConnectionError,
  connect,
  ConnectionError,
  DrainingConnectionError,
  nanos,
  NoRespondersError,
  RequestError,
  TimeoutError,
  type NatsConnection,
} from '@nats-io/transport-node';
import { handleDelivery, park } from '../handle-delivery.js';
import { subjectMatches } from '../subject-matches.js';
import { natsServerOptions } from './nats-server-options.js';
import {
  MessageBusConfigurationError,
  MessageBusUnavailableError,
  type BusMessage,
  type ConsumeOptions,
  type Consumption,
  type DeliveredMessage,
  type MessageBus,
} from '../message-bus.js';
import { messageOf } from '../../errors.js';

export interface NatsMessageBusOptions {
  readonly servers: string | readonly string[];
  /** The JetStream stream holding this bus's subjects; created, or given missing subjects, on first use. */
  readonly stream: string;
  readonly subjects: readonly string[];
  /** How long the stream remembers message ids to drop republished ones. Default two minutes. */
  readonly duplicateWindowMs?: number;
  /**
   * How often the stream is looked at while connected (default 5000): deleted on a running broker, it
   * is made again and its new creation time told, also to a role that only publishes and would
   * otherwise never learn that what it published is gone.
   */
  readonly streamCheckIntervalMs?: number;
  /** Bound on connecting and on waiting for the broker's acknowledgement of a publish. Default 5000. */
  readonly publishTimeoutMs?: number;
  /** Shown in the server's connection list. */
  readonly connectionName?: string;
  /**
   * The deployment this bus serves (its database and schema prefix): written in the description of the
   * stream it creates, and a stream that names another deployment is refused. Sharing a stream, two
   * deployments would split each other's messages between their consumers of the same names.
   */
  readonly deployment?: string;
  readonly onError?: (error: unknown, context: string) => void;
}

interface Session {
  readonly connection: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
}

/**
 * The bus over NATS JetStream: publishes wait for the stream's acknowledgement and carry the message id
 * as `Nats-Msg-Id`; consumers are durable pull consumers, so replicas using one durable name share it.
 *
 * Nothing waits for the broker at start-up: the first publish or consume connects, and a publish while
 * the broker is unreachable fails fast with `MessageBusUnavailableError` rather than queueing in memory;
 * its caller (the outbox relay) retries from its store.
 */
export function natsMessageBus(options: NatsMessageBusOptions): MessageBus {
  const timeoutMs = options.publishTimeoutMs ?? 5000;
  const consumptions = new Set<Consumption>();
  const report = options.onError ?? (() => {});
  let session: Promise<Session> | undefined;
  let connected = false;
  let closed = false;
  /** Why the last attempt to open a session failed, until one opens. */
  let openFailure: string | undefined;
  /**
   * The broker's refusal of this configuration (the stream belongs to another deployment, its subjects
   * overlap another stream's). It stands for the life of the process: a refused bus that went on trying
   * would make the stream itself once the broker lost it, and lock the deployment that owns it out.
   */
  let refusal: MessageBusConfigurationError | undefined;
  /** After a reconnect the broker may hold another stream of that name (restarted without its data). */
  let ownerUnchecked = false;
  /** Told when the broker answers again, so that work backing off from the outage resumes at once. */
  const reachableListeners = new Set<() => void>();
  const reachableAgain = () => {
    for (const listener of reachableListeners) listener();
  };
  let accept = () => {};
  const accepted = new Promise<void>((resolve) => (accept = resolve));

  const streamPlan: StreamPlan = {
    name: options.stream,
    subjects: options.subjects,
    duplicateWindowMs: options.duplicateWindowMs ?? 120_000,
    deployment: options.deployment,
  };
  /** When the stream was made, as the broker said at the last check; and the timer of those checks. */
  let streamCreated: string | undefined;
  let looking: NodeJS.Timeout | undefined;
  /** The stream made, extended or checked as this deployment's; a refusal is kept for good. */
  const checkStream = async (jsm: JetStreamManager) => {
    if (refusal) throw refusal;
    try {
      streamCreated = await ensureStream(jsm, streamPlan);
    } catch (error) {
      if (error instanceof MessageBusConfigurationError) refusal = error;
      throw error;
    }
    accept();
  };
  // When a publish fails, the stream is made again if it is gone, at most once a second.
  let streamCheckedAt = Number.NEGATIVE_INFINITY;
  const ensureStreamAfterFailure = async (jsm: JetStreamManager) => {
    if (performance.now() - streamCheckedAt < 1000) return;
    streamCheckedAt = performance.now();
    await checkStream(jsm).catch((error: unknown) => report(error, `stream ${options.stream} could not be made again`));
  };

  const open = async (): Promise<Session> => {
    const connection = await connect({
      ...natsServerOptions(options.servers),
      // The node client takes tls:// for nats:// and would talk in the clear to a server without TLS.
      ...(asksForTls(options.servers) ? { tls: {} } : {}),
      name: options.connectionName,
      timeout: timeoutMs,
      // Once connected, keep reconnecting for as long as the process lives.
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      // Otherwise every publish and fetch builds a TimeoutError with a stack trace up front, in case it
      // times out: about 3 % of the ingestion role's CPU under load. Failures are logged with our own context.
      noAsyncTraces: true,
    });
    try {
      const jsm = await jetstreamManager(connection);
      await checkStream(jsm);
      // Connected means usable: a server without JetStream, or a stream that cannot be made, is not.
      connected = true;
      const failedBefore = openFailure !== undefined;
      openFailure = undefined;
      if (failedBefore) reachableAgain();
      void watchConnection(connection);
      looking ??= setInterval(() => {
        if (connected && !closed && !refusal)
          void session
            ?.then((live) => checkStream(live.jsm))
            .catch((error: unknown) => report(error, `stream ${options.stream} could not be checked`));
      }, options.streamCheckIntervalMs ?? 5000).unref();
      return { connection, js: jetstream(connection), jsm };
    } catch (error) {
      // Each retry opens a connection of its own: a failed one must not stay behind, reconnecting forever.
      await connection.close().catch(() => undefined);
      throw error;
    }
  };

  const watchConnection = async (connection: NatsConnection) => {
    for await (const status of connection.status()) {
      if (status.type === 'disconnect' || status.type === 'close') connected = false;
      if (status.type === 'reconnect') {
        ownerUnchecked = true;
        connected = true;
        // Checked now rather than at the next publish: a stream lost with the broker's data is made
        // again at once, and the relay, told by its new creation time, publishes its log into it again.
        void session
          ?.then((live) => checkStream(live.jsm))
          .then(() => (ownerUnchecked = false))
          .catch((error: unknown) => report(error, `stream ${options.stream} could not be checked after a reconnect`))
          .finally(reachableAgain);
      }
    }
  };

  /** The live session, opening one when there is none or the last one was closed for good. */
  const current = async (): Promise<Session> => {
    if (closed) throw new MessageBusUnavailableError('the bus is closed');
    if (refusal) throw refusal;
    const pending = session;
    const existing = pending && (await pending.catch(() => undefined));
    if (existing && !existing.connection.isClosed()) return existing;
    // Another caller replaced it while this one waited: share theirs rather than open a second connection.
    if (session !== pending) return current();
    session = open();
    session.catch((error: unknown) => {
      openFailure = messageOf(error);
      session = undefined;
    });
    return session;
  };

  /** The session for an operator's request: an unreachable broker is a 503, not a 500. */
  const reachable = () =>
    current().catch((error: unknown) => {
      throw error instanceof MessageBusConfigurationError
        ? error
        : new MessageBusUnavailableError(`cannot reach NATS (${messageOf(error)})`);
    });

  /**
   * An operator's request to the broker's API (a status report, a replay). While the client reconnects
   * each request would wait out its timeout and fail as an internal error: it fails at once as a 503.
   */
  const askBroker = async <T>(work: (jsm: JetStreamManager) => Promise<T>): Promise<T> => {
    const { jsm } = await reachable();
    if (!connected) throw new MessageBusUnavailableError('disconnected from NATS, reconnecting');
    try {
      return await work(jsm);
    } catch (error) {
      if (!isBrokerUnreachable(error)) throw error;
      throw new MessageBusUnavailableError(`NATS did not answer (${messageOf(error)})`);
    }
  };

  /**
   * The stream's consumers, one listing for every progress call made while it runs: a status report
   * asks for each subscriber's progress at once, and each listing returns every consumer of the stream.
   */
  let listing: Promise<ConsumerInfo[]> | undefined;
  const sharedListing = (jsm: JetStreamManager) =>
    (listing ??= consumersOf(jsm, options.stream).finally(() => {
      listing = undefined;
    }));

  /** One durable consumer's loop: messages in hand up to the concurrency, a key's messages one after the other. */
  const consumeOne = async (
    js: JetStreamClient,
    planned: PlannedConsumer,
    /** Whether the server's filter lets through more than the planned subjects. */
    wide: boolean,
    handler: (m: DeliveredMessage) => Promise<void>,
    consume: ConsumeOptions,
  ): Promise<Consumption> => {
    const consumer = await js.consumers.get(options.stream, planned.name);
    const messages = await consumer.consume({ max_messages: consume.prefetch ?? 64 });
    let stopping = false;
    // The client goes on asking a deleted consumer (or a stream gone with the broker's data) for
    // messages, for ever and in silence: the loss is told to the owner, which attaches again.
    void (async () => {
      for await (const status of messages.status()) {
        if (stopping) return;
        if (status.type === 'consumer_deleted' || status.type === 'consumer_not_found' || status.type === 'stream_not_found') {
          consume.onLost?.(`the broker lost consumer ${planned.name} (${status.type.replaceAll('_', ' ')})`);
          return;
        }
      }
    })().catch((error: unknown) => report(error, `consumer ${planned.name} status`));
    const concurrency = Math.max(1, consume.concurrency ?? 1);
    const inFlight = new Set<Promise<void>>();
    // The last delivery of each key: the next one of that key starts after it.
    const tails = new Map<string, Promise<void>>();
    const loop = (async () => {
      for await (const msg of messages) {
        // Prefetched but not handled: hand it straight back to the durable consumer for another replica.
        if (stopping) {
          msg.nak();
          continue;
        }
        // What a wider filter let through (one per role, or a filter a server before 2.10 would not
        // narrow) is not this consumer's: settled without a handler.
        if (wide && !planned.subjects.some((subject) => subjectMatches(subject, msg.subject))) {
          msg.ack();
          continue;
        }
        while (inFlight.size >= concurrency) await Promise.race(inFlight);
        const message = decode(msg, options.stream);
        const key = message instanceof Error || !consume.keyOf ? `#${msg.seq}` : consume.keyOf(message);
        const task: Promise<void> = (tails.get(key) ?? Promise.resolve())
          .then(() => deliver(msg, message, handler, consume, options.stream, () => stopping))
          .catch((error: unknown) => report(error, `consumer ${planned.name} could not settle a message`))
          .finally(() => {
            inFlight.delete(task);
            if (tails.get(key) === task) tails.delete(key);
          });
        tails.set(key, task);
        inFlight.add(task);
      }
      await Promise.all(inFlight);
    })().catch((error: unknown) => report(error, `consumer ${planned.name} stopped`));
    return {
      async stop() {
        stopping = true;
        messages.stop();
        await loop;
      },
    };
  };

  return {
    async publish(subject, message) {
      let live: Session;
      try {
        live = await current();
      } catch (error) {
        if (error instanceof MessageBusConfigurationError) throw error;
        throw new MessageBusUnavailableError(`cannot reach NATS (${messageOf(error)})`);
      }
      // While reconnecting the client would buffer the message in memory; the caller retries instead.
      if (!connected) throw new MessageBusUnavailableError('disconnected from NATS, reconnecting');
      if (refusal) throw refusal;
      if (ownerUnchecked) {
        // A refusal goes to the caller as it is: retrying will not help, and readiness says so.
        await checkStream(live.jsm).catch((error: unknown) => {
          throw error instanceof MessageBusConfigurationError ? error : new MessageBusUnavailableError(messageOf(error));
        });
        ownerUnchecked = false;
      }
      try {
        await live.js.publish(subject, JSON.stringify(message), { msgID: message.id, timeout: timeoutMs });
      } catch (error) {
        // No stream takes the subject any more (a broker restarted without its data): made again for the retry.
        await ensureStreamAfterFailure(live.jsm);
        throw new MessageBusUnavailableError(`publish to ${subject} was not acknowledged (${messageOf(error)})`);
      }
    },

    async consume(durableName, subjects, handler, consume) {
      const { js, jsm, connection } = await current();
      // The stream too may be gone since the connection opened (a broker restarted without its data).
      await checkStream(jsm);
      const plan = consumersFor(durableName, subjects, atLeast(connection.info?.version, [2, 10]));
      const unchanged = await ensureConsumers(jsm, options.stream, durableName, plan, consume);
      const started = await Promise.allSettled(
        plan.map((planned) => consumeOne(js, planned, wider(planned) || unchanged.has(planned.name), handler, consume)),
      );
      const parts = started.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
      const failed = started.find((outcome) => outcome.status === 'rejected');
      if (failed) {
        // All or nothing: the caller attaches again, and must not leave a loop of the first attempt behind.
        await Promise.all(parts.map((part) => part.stop()));
        throw failed.reason;
      }
      const consumption: Consumption = {
        async stop() {
          await Promise.all(parts.map((part) => part.stop()));
          consumptions.delete(consumption);
        },
      };
      consumptions.add(consumption);
      return consumption;
    },

    streamCreated: () => streamCreated,

    async progress(durableName) {
      const family = familyOf(await askBroker(sharedListing), durableName);
      if (family.length === 0) return undefined;
      const members = family.map((info) => ({ acknowledged: info.ack_floor.stream_seq, pending: info.num_pending + info.num_ack_pending }));
      return {
        acknowledged: Math.max(...members.map((member) => member.acknowledged)),
        pending: members.reduce((sum, member) => sum + member.pending, 0),
        members,
      };
    },

    async head() {
      return askBroker(async (jsm) => (await jsm.streams.info(options.stream)).state.last_seq);
    },

    async rewind(durableName) {
      await askBroker(async (jsm) => {
        for (const info of await consumersNamed(jsm, options.stream, durableName)) await deleteConsumer(jsm, options.stream, info.name);
      });
    },

    misconfigured: () => refusal?.message,
    accepted: () => accepted,

    onReachable(listener) {
      reachableListeners.add(listener);
      return () => reachableListeners.delete(listener);
    },

    unreachable() {
      if (closed) return 'the bus is closed';
      if (connected) return undefined;
      // A role that only publishes opens no session until its first event: asked, it opens one, so
      // that readiness reports the broker as it is rather than "connecting" until then.
      if (session === undefined) void current().catch(() => undefined);
      if (openFailure !== undefined) return `cannot reach NATS (${openFailure})`;
      return 'not connected to NATS: connecting or reconnecting';
    },

    async close() {
      closed = true;
      clearInterval(looking);
      await Promise.all([...consumptions].map((c) => c.stop()));
      const live = session && (await session.catch(() => undefined));
      if (live && !live.connection.isClosed()) await live.connection.drain();
    },
  };
}

async function deliver(
  msg: JsMsg,
  message: DeliveredMessage | Error,
  handler: (m: DeliveredMessage) => Promise<void>,
  options: ConsumeOptions,
  stream: string,
  stopping: () => boolean,
): Promise<void> {
  // No attempt can read it better than the first: an unreadable message goes straight to the dead letters.
  const settlement =
    message instanceof Error
      ? await park(unreadable(msg, stream), message, options)
      : await handleDelivery(message, handler, options, { working: () => msg.working(), stopping });
  if (settlement.kind === 'retry') {
    msg.nak(settlement.delayMs);
    return;
  }
  // Sent without waiting for the server to confirm it: a lost acknowledgement only means one more
  // delivery, which handlers tolerate (a consumer's claims make it change nothing). Waiting cost a
  // request per message, with its timer and reply, for no guarantee the handlers need.
  msg.ack();
}

function decode(msg: JsMsg, stream: string): DeliveredMessage | Error {
  try {
    const body = msg.json<Partial<BusMessage>>();
    if (typeof body.id !== 'string' || typeof body.type !== 'string' || typeof body.data !== 'object' || body.data === null) {
      return new Error(`message ${stream}#${msg.seq} is not a bus message (id, type, data, metadata)`);
    }
    return {
      id: body.id,
      type: body.type,
      data: body.data,
      metadata: body.metadata ?? {},
      subject: msg.subject,
      attempt: msg.info.deliveryCount,
    };
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** What the dead-letter path receives for a message that cannot even be read. */
function unreadable(msg: JsMsg, stream: string): DeliveredMessage {
  return {
    id: msg.headers?.get('Nats-Msg-Id') || `${stream}#${msg.seq}`,
    type: 'unreadable',
    data: { raw: msg.string().slice(0, 10_000) },
    metadata: {},
    subject: msg.subject,
    attempt: msg.info.deliveryCount,
  };
}

const asksForTls = (servers: string | readonly string[]): boolean =>
  (typeof servers === 'string' ? servers.split(',') : servers).some((server) => /^\s*tls:\/\//i.test(server));

/** The server's code for a stream whose subjects overlap another stream's. */
const STREAM_SUBJECT_OVERLAP = 10065;

interface StreamPlan {
  readonly name: string;
  readonly subjects: readonly string[];
  readonly duplicateWindowMs: number;
  readonly deployment: string | undefined;
}

const OWNER_PREFIX = 'Intake deployment: ';
const ownerOf = (description: string | undefined) =>
  description?.startsWith(OWNER_PREFIX) ? description.slice(OWNER_PREFIX.length) : undefined;

/** Makes, extends or checks the stream; answers when it was made (a stream made again has a new time). */
async function ensureStream(jsm: JetStreamManager, plan: StreamPlan): Promise<string> {
  const { name, subjects } = plan;
  try {
    return await createOrExtendStream(jsm, plan);
  } catch (error) {
    if (!isApiError(error, STREAM_SUBJECT_OVERLAP)) throw error;
    throw new MessageBusConfigurationError(
      `the subjects ${subjects.join(', ')} of stream ${name} overlap another stream's: give each deployment on this NATS its own NATS_STREAM and subject prefix`,
    );
  }
}

async function createOrExtendStream(jsm: JetStreamManager, plan: StreamPlan): Promise<string> {
  const { name, subjects, deployment } = plan;
  const description = deployment === undefined ? undefined : `${OWNER_PREFIX}${deployment}`;
  let info;
  try {
    info = await jsm.streams.info(name);
  } catch (error) {
    if (!isApiError(error, JetStreamApiCodes.StreamNotFound)) throw error;
    const made = await jsm.streams.add({
      name,
      subjects: [...subjects],
      duplicate_window: nanos(plan.duplicateWindowMs),
      storage: StorageType.File,
      ...(description === undefined ? {} : { description }),
    });
    return made.created;
  }
  const owner = ownerOf(info.config.description);
  if (deployment !== undefined && owner !== undefined && owner !== deployment) {
    throw new MessageBusConfigurationError(
      `NATS stream ${name} belongs to another Intake deployment (${owner}), not to this one (${deployment}): ` +
        'give each deployment on this NATS its own NATS_STREAM (and NATS_SUBJECT_PREFIX)',
    );
  }
  const missing = subjects.filter((s) => !(info.config.subjects ?? []).includes(s));
  // A stream made before streams named their deployment is claimed by the first to see it.
  const claim = description !== undefined && owner === undefined;
  if (missing.length > 0 || claim)
    await jsm.streams.update(name, {
      subjects: [...(info.config.subjects ?? []), ...missing],
      ...(claim ? { description } : {}),
    });
  return info.created;
}

/** A durable consumer of the broker: the subjects it is for, and the filters it is given. */
interface PlannedConsumer {
  readonly name: string;
  readonly subjects: readonly string[];
  readonly filters: readonly string[];
}

/** Whether a consumer's filters cover more than the subjects it is for. */
const wider = (planned: PlannedConsumer) => planned.filters.some((filter) => !planned.subjects.includes(filter));

/** Separates a subscriber's durable name from the role whose messages one of its consumers reads. */
const FROM_ROLE = '--';

/**
 * The consumers that read `subjects` for one durable name. A server of 2.10 or later takes them all as
 * one consumer's filters. An earlier one takes a single filter per consumer: then one consumer per
 * publishing role (`<prefix>.<role>.>` when it needs several of that role's types), so a role's events
 * stay in their order and no role's messages are handed over only to be skipped; when the subjects do
 * not name their role, one filter covering them all.
 */
export function consumersFor(durableName: string, subjects: readonly string[], manyFilters: boolean): PlannedConsumer[] {
  if (manyFilters || subjects.length === 1) return [{ name: durableName, subjects, filters: subjects }];
  const byRole = new Map<string, string[]>();
  for (const subject of subjects) {
    const source = subject.slice(0, subject.lastIndexOf('.'));
    byRole.set(source, [...(byRole.get(source) ?? []), subject]);
  }
  const sources = [...byRole.keys()];
  if (byRole.size === 1 || sources.some((source) => source === '' || source.includes('*') || source.includes('>'))) {
    return [{ name: durableName, subjects, filters: [commonWildcard(subjects)] }];
  }
  return [...byRole].map(([source, own]) => ({
    name: `${durableName}${FROM_ROLE}${source.slice(source.lastIndexOf('.') + 1)}`,
    subjects: own,
    filters: [own.length === 1 ? (own[0] ?? source) : `${source}.>`],
  }));
}

/** The consumers behind one durable name: itself, or one per role it reads (see `consumersFor`). */
async function consumersNamed(jsm: JetStreamManager, stream: string, durableName: string): Promise<ConsumerInfo[]> {
  return familyOf(await consumersOf(jsm, stream), durableName);
}

const familyOf = (consumers: readonly ConsumerInfo[], durableName: string) =>
  consumers.filter((info) => info.name === durableName || info.name.startsWith(`${durableName}${FROM_ROLE}`));

/** Every consumer of the stream (none when the stream is not there yet). */
async function consumersOf(jsm: JetStreamManager, stream: string): Promise<ConsumerInfo[]> {
  const consumers: ConsumerInfo[] = [];
  try {
    for await (const info of jsm.consumers.list(stream)) consumers.push(info);
  } catch (error) {
    if (!isApiError(error, JetStreamApiCodes.StreamNotFound)) throw error;
  }
  return consumers;
}

async function deleteConsumer(jsm: JetStreamManager, stream: string, name: string): Promise<void> {
  try {
    await jsm.consumers.delete(stream, name);
  } catch (error) {
    if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound)) throw error;
  }
}

/**
 * Creates or updates the planned consumers. Consumers of the same durable name that the plan no longer
 * has (a server upgraded to 2.10, a subscriber reading another set of roles) hand over: a new consumer
 * starts after the lowest point they had all acknowledged, and they are removed. What was acknowledged
 * beyond that point may come once more, which a subscriber's claims or idempotent fold absorb.
 * Answers the consumers whose filter the server kept as it was (a server before 2.10 will not narrow one).
 */
async function ensureConsumers(
  jsm: JetStreamManager,
  stream: string,
  durableName: string,
  plan: readonly PlannedConsumer[],
  options: ConsumeOptions,
): Promise<Set<string>> {
  const wanted = new Set(plan.map((planned) => planned.name));
  const stale = (await consumersNamed(jsm, stream, durableName)).filter((info) => !wanted.has(info.name));
  const handedOverAt = stale.length === 0 ? undefined : Math.min(...stale.map((info) => info.ack_floor.stream_seq)) + 1;
  const unchanged = new Set<string>();
  for (const planned of plan) {
    if (!(await ensureConsumer(jsm, stream, planned.name, planned.filters, options, handedOverAt))) unchanged.add(planned.name);
  }
  for (const info of stale) await deleteConsumer(jsm, stream, info.name);
  return unchanged;
}

async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  durableName: string,
  filters: readonly string[],
  options: ConsumeOptions,
  startSequence: number | undefined,
): Promise<boolean> {
  const filter: Partial<ConsumerConfig> = filters.length === 1 ? { filter_subject: filters[0] } : { filter_subjects: [...filters] }; // several need NATS 2.10
  const wanted: Partial<ConsumerConfig> = {
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(options.ackWaitMs),
    // Unlimited on the server: the consumer parks after maxDeliver attempts itself, where a server-side
    // limit would silently stop delivering a message whose handler kept crashing.
    max_deliver: -1,
    ...filter,
  };
  try {
    const { config } = await jsm.consumers.info(stream, durableName);
    const same =
      config.ack_wait === wanted.ack_wait &&
      config.filter_subject === wanted.filter_subject &&
      String(config.filter_subjects ?? []) === String(wanted.filter_subjects ?? []);
    if (same) return true;
    // A server before 2.10 may refuse to change a filter: the old one still delivers all that is wanted.
    return await jsm.consumers.update(stream, durableName, wanted).then(
      () => true,
      () => false,
    );
  } catch (error) {
    if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound)) throw error;
    const start: Partial<ConsumerConfig> =
      startSequence === undefined
        ? { deliver_policy: DeliverPolicy.All }
        : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startSequence };
    await jsm.consumers.add(stream, { ...wanted, ...start, durable_name: durableName });
    return true;
  }
}

function atLeast(version: string | undefined, [major, minor]: readonly [number, number]): boolean {
  const [m = 0, n = 0] = (version ?? '0.0').split('.').map((part) => Number.parseInt(part, 10));
  return m > major || (m === major && n >= minor);
}

/** The narrowest single filter covering every subject: their common leading tokens, then `>`. */
export function commonWildcard(subjects: readonly string[]): string {
  const split = subjects.map((subject) => subject.split('.'));
  const common: string[] = [];
  for (let i = 0; ; i++) {
    const token = split[0]?.[i];
    // The last token of a subject cannot be followed by `>`: stop before it.
    if (token === undefined || token === '>' || split.some((tokens) => tokens[i] !== token || i >= tokens.length - 1)) break;
    common.push(token);
  }
  return [...common, '>'].join('.');
}

function isApiError(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
}

/** The client's errors for a broker it cannot reach or that does not answer, as opposed to an answer refusing the request. */
function isBrokerUnreachable(error: unknown): boolean {
  return [TimeoutError, RequestError, ConnectionError, ClosedConnectionError, DrainingConnectionError, NoRespondersError].some(
    (type) => error instanceof type,
  );
}
