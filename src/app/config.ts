import { isIP } from 'node:net';
import { parseEnv } from 'node:util';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Durability } from '../shared/event-store/sqlite/sqlite-event-store.js';
import { OPTIONAL_CONTEXTS } from './optional-contexts.js';
import { DEFAULT_PORTS, parseRoles, type Role } from './roles.js';
import { withoutPassword } from '../shared/postgres/connection-url.js';
import { DEFAULT_POOL_SIZE } from '../shared/postgres/pool-size.js';
import { LOCK_TIMEOUT_MS, SUBSCRIBER_LOCK_WAIT_MS } from '../shared/postgres/open-postgres.js';
import { attributionOptionsFromEnv } from '../attribution/module.js';
import { parseBreakerPolicy } from '../routing/domain/circuit-breaker.js';
import { parseRetrySchedule } from '../routing/domain/delivery.js';
import { parseAllowedHosts } from '../routing/adapters/webhook/destination-policy.js';

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly databaseUrl: string;
  /** The distributed mode: a postgres:// DATABASE_URL with NATS_URL (without NATS, PostgreSQL runs embedded). */
  readonly distributed: boolean;
  /** Which services this process runs: `all` (embedded) or roles of the distributed mode. */
  readonly roles: Role[] | 'all';
  /** Each role keeps its tables in the PostgreSQL schema `<prefix><role>`. */
  readonly schemaPrefix: string;
  readonly natsStream: string;
  /** Subjects of this deployment: `<prefix>.<context>.<EventType>`; derived from the stream unless set. */
  readonly natsSubjectPrefix: string;
  /** Contexts left out of the embedded process (INTAKE_DISABLE, comma list): for benchmarks and lean deployments. */
  readonly disabledContexts: readonly string[];
  /** Where generated secrets live: beside the SQLite file, or ./data. */
  readonly dataDir: string;
  readonly adminToken: string | undefined;
  /** When set, GET /metrics needs it as a bearer token; otherwise /metrics is public. */
  readonly metricsToken: string | undefined;
  readonly logLevel: string;
  readonly bodyLimitBytes: number;
  /** REQUEST_TIMEOUT_MS: how long a client may take to send a whole request before its connection is cut. */
  readonly requestTimeoutMs: number;
  /** MAX_CONNECTIONS: open client connections beyond which a new one is closed at once. */
  readonly maxConnections: number;
  /** Connections each process keeps to PostgreSQL (DATABASE_POOL_SIZE). */
  readonly databasePoolSize: number;
  /** How long a PostgreSQL statement waits for a lock before the request gets 503 (DATABASE_LOCK_TIMEOUT_MS). */
  readonly databaseLockTimeoutMs: number;
  /** How deep objects and arrays may nest in a JSON body (or in each event of a batch). */
  readonly maxJsonDepth: number;
  readonly maxJsonValues: number;
  readonly durability: Durability;
  /** Embedded on a SQLite file: a storage thread owns the write connection (STORAGE_THREAD, on by default). */
  readonly storageThread: boolean;
  /**
   * TRUST_PROXY: the proxies whose X-Forwarded-For, -Proto and -Host are believed: false (none), a
   * number of hops in front of Intake, or their addresses and networks.
   */
  readonly trustProxy: TrustProxy;
  /** PUBLIC_URL: where browsers reach Intake; analytics.js is told to send there (else to the Host it asked). */
  readonly publicUrl?: URL;
  /** The storage thread's old-generation heap limit in MB (STORAGE_THREAD_HEAP_MB, at least MIN_STORAGE_THREAD_HEAP_MB). */
  readonly storageThreadHeapMb: number;
  /** Appends waiting for their commit beyond which ingest answers 503. */
  readonly maxQueuedAppends: number;
  /** Events the subscribers may trail behind before incoming data waits for them (SUBSCRIBER_BACKLOG_LIMIT; 0: never). */
  readonly subscriberBacklogLimit: number;
  /** Longest a request waits for the subscribers before it goes ahead anyway (SUBSCRIBER_BACKLOG_WAIT_MS). */
  readonly subscriberBacklogWaitMs: number;
  /** Distributed mode: least time between two transactions of one subscriber (CONSUMER_COMMIT_INTERVAL_MS; 0: none). */
  readonly consumerCommitIntervalMs: number;
  /** Private hosts and CIDRs webhooks may reach (WEBHOOK_ALLOWED_HOSTS, comma list). */
  readonly webhookAllowedHosts: string;
  /** Seconds between webhook attempts (WEBHOOK_RETRY_SCHEDULE, comma list). */
  readonly webhookRetrySchedule: string | undefined;
  /** Circuit breaker per destination: consecutive failures that open it, and its cool-down in seconds. */
  readonly breakerThreshold: string | undefined;
  readonly breakerCooldownSeconds: string | undefined;
  /** Delivery attempts one worker runs at once (ROUTING_CONCURRENCY); each destination may take a quarter of them. */
  readonly routingConcurrency: number;
  /** Names this process's delivery worker (ROUTING_WORKER_ID); stable per replica. */
  readonly routingWorkerId: string | undefined;
  /** Events a rule replay sends per second at most (ROUTING_REPLAY_RATE). */
  readonly replayRatePerSecond: number;
  /** Encrypts webhook signing secrets at rest (INTAKE_SECRET_KEY); generated into dataDir when unset. */
  readonly secretKey: string | undefined;
  readonly idempotencyWindowHours: number;
  /** Days succeeded deliveries and their attempts are kept after their last change (DELIVERY_RETENTION_DAYS; 0: for ever). */
  readonly deliveryRetentionDays: number;
  /** Default brokers of `queue` destinations. */
  readonly natsUrl: string | undefined;
  readonly rabbitmqUrl: string | undefined;
  readonly redisUrl: string | undefined;
  /** Brokers rules may name in a queue destination's `connection` (QUEUE_BROKERS, `name=url,...`). */
  readonly queueBrokers: Readonly<Record<string, string>>;
}

export class ConfigError extends Error {}

/** Reads `.env` (if present) into the environment without overriding what is already set. */
export function loadDotEnv(path = '.env'): void {
  if (!existsSync(path)) return;
  try {
    if (!statSync(path).isFile()) throw new Error('it is not a regular file');
    // An editor's byte order mark would stay in the first name (`\uFEFFPORT`): that setting was lost.
    const text = readFileSync(path, 'utf8').replace(/^\uFEFF/, '');
    // Node skips a line it cannot read without a word: `PORT 41004` served on 8000, on every interface.
    const unreadable = unreadableLine(text);
    if (unreadable !== undefined) {
      const { line, why } = unreadable;
      throw new ConfigError(`${resolve(path)} line ${line} ${why}: correct or remove it`);
    }
    // As process.loadEnvFile does: what the environment already sets wins.
    for (const [name, value] of Object.entries(parseEnv(text))) if (process.env[name] === undefined) process.env[name] = value;
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    // Node's own words name neither the file's place nor what is wrong with it ("should be a valid string").
    const why = statSync(path).isDirectory() ? 'it is a directory' : (error as Error).message;
    throw new ConfigError(`cannot read ${resolve(path)}: ${why} (remove it, or make it a file of NAME=value lines)`);
  }
}

/**
 * The first line of a .env text that is neither `NAME=value` (maybe `export`ed), a comment nor blank,
 * or whose quoted value is never closed (Node would take the quote as part of the value), or is
 * followed by more than a comment (Node drops it: `ADMIN_TOKEN="abc"def` set the token `abc`).
 */
function unreadableLine(text: string): { line: number; why: string } | undefined {
  const lines = text.split(/\r?\n/);
  const afterQuote = (line: number) => ({
    line,
    why: 'has text after the closing quote of its value, which would be dropped; put it inside the quotes',
  });
  const onlyCommentAfter = (rest: string) => rest.trim() === '' || rest.trim().startsWith('#');
  // A quoted value may run over several lines, up to its closing quote.
  let openQuote: string | undefined;
  for (const [index, line] of lines.entries()) {
    if (openQuote !== undefined) {
      const close = line.indexOf(openQuote);
      if (close !== -1) {
        openQuote = undefined;
        if (!onlyCommentAfter(line.slice(close + 1))) return afterQuote(index + 1);
      }
      continue;
    }
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const assignment = /^(?:export\s+)?[\w.-]+\s*=(.*)$/.exec(trimmed);
    if (!assignment) return { line: index + 1, why: 'is not a NAME=value line (nor a # comment)' };
    const value = (assignment[1] ?? '').trim();
    const quote = value[0];
    if ((quote === '"' || quote === "'" || quote === '`') && value.indexOf(quote, 1) === -1) {
      if (!lines.slice(index + 1).some((later) => later.includes(quote))) {
        return { line: index + 1, why: `opens a quoted value (${quote}) that is never closed` };
      }
      openQuote = quote;
    } else if ((quote === '"' || quote === "'" || quote === '`') && !onlyCommentAfter(value.slice(value.indexOf(quote, 1) + 1))) {
      return afterQuote(index + 1);
    }
    // Node ends an unquoted value at its first `#`: `ADMIN_TOKEN=abc#def` set the token `abc`. A `#`
    // after a space is taken for the comment it looks like. The value is not echoed: it may be a secret.
    const quoted = quote === '"' || quote === "'" || quote === '`';
    if (!quoted && ((assignment[1] ?? '').split(/\s#/)[0] ?? '').includes('#')) {
      return { line: index + 1, why: 'has a # in an unquoted value, where the value would be cut short; put the value in quotes' };
    }
  }
  return undefined;
}

/**
 * Below this, ordinary batch traffic (eight clients of 1 MB batches) ran the storage thread out of
 * memory at 128 MB; what the HTTP thread hands it is scaled to the limit too (`storageBudgetOf`).
 */
export const MIN_STORAGE_THREAD_HEAP_MB = 256;

/** How long a subscriber's transaction on PostgreSQL waits for a lock: a second, or less if requests wait less. */
export const subscriberLockWaitMs = (config: Pick<Config, 'databaseLockTimeoutMs'>) =>
  Math.min(SUBSCRIBER_LOCK_WAIT_MS, config.databaseLockTimeoutMs);

export const isPostgresUrl = (url: string) => /^postgres(ql)?:\/\//.test(url);

/**
 * The PostgreSQL schema of a distributed role (`<prefix><role>`), or of the one process when it runs
 * on PostgreSQL (`<prefix>intake`).
 */
export const postgresSchemaOf = (config: Pick<Config, 'schemaPrefix'>, role?: string) => `${config.schemaPrefix}${role ?? 'intake'}`;

/**
 * A distributed deployment as its NATS stream names it: its database and schema prefix. Not its host,
 * which roles may reach by different names.
 */
export function deploymentOf(config: Pick<Config, 'schemaPrefix' | 'databaseUrl'>): string {
  let database = '';
  try {
    database = decodeURIComponent(new URL(config.databaseUrl).pathname.slice(1));
  } catch {
    // A URL PostgreSQL takes but URL does not: the prefix alone names the deployment.
  }
  return `database ${database || '(default)'}, schemas ${config.schemaPrefix || '(no prefix)'}…`;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const databaseUrl = env.DATABASE_URL || 'sqlite:./data/intake.db';
  const postgres = isPostgresUrl(databaseUrl);
  if (!databaseUrl.startsWith('sqlite:') && !postgres) {
    throw new ConfigError(`DATABASE_URL must be a sqlite: or postgres:// URL (got ${redactUrl(databaseUrl)})`);
  }
  let roles: Role[] | 'all';
  try {
    roles = parseRoles(env.ROLE);
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  if (roles !== 'all' && !(postgres && env.NATS_URL))
    throw new ConfigError('ROLE selects services of the distributed mode: it needs a postgres:// DATABASE_URL and NATS_URL');
  const natsStream = env.NATS_STREAM || 'INTAKE';
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(natsStream))
    throw new ConfigError(`NATS_STREAM may hold letters, digits, _ and - (got "${natsStream}")`);
  const singleRole = roles !== 'all' && roles.length === 1 ? roles[0] : undefined;
  const sqlitePath = postgres ? './data/intake.db' : databaseUrl.slice('sqlite:'.length).replace(/^\/\//, '');
  // `sqlite:` alone would put the data directory in the parent of the working one.
  if (sqlitePath === '')
    throw new ConfigError('DATABASE_URL names no file: write sqlite:./data/intake.db, sqlite:/abs/path.db or sqlite::memory:');
  const config: Config = {
    port: integer(env, 'PORT', singleRole ? DEFAULT_PORTS[singleRole] : 8000, 0, 65535),
    roles,
    distributed: postgres && Boolean(env.NATS_URL),
    schemaPrefix: schemaPrefix(env.DB_SCHEMA_PREFIX),
    natsStream,
    natsSubjectPrefix: subjectPrefix(env.NATS_SUBJECT_PREFIX, natsStream),
    disabledContexts: disabledContexts(env.INTAKE_DISABLE),
    // Empty is unset, as for every other variable (a compose file's `HOST: ${HOST:-}`).
    host: env.HOST || '0.0.0.0',
    databaseUrl,
    dataDir: env.DATA_DIR ? resolve(env.DATA_DIR) : sqlitePath === ':memory:' ? resolve('data') : dirname(resolve(sqlitePath)),
    adminToken: bearerToken(env.ADMIN_TOKEN, 'ADMIN_TOKEN'),
    metricsToken: bearerToken(env.METRICS_TOKEN, 'METRICS_TOKEN'),
    logLevel: oneOf(env, 'LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
    bodyLimitBytes: integer(env, 'BODY_LIMIT', 1024 * 1024, 1024, 64 * 1024 * 1024),
    requestTimeoutMs: integer(env, 'REQUEST_TIMEOUT_MS', 30_000, 100, 3_600_000),
    maxConnections: integer(env, 'MAX_CONNECTIONS', 10_000, 1, 1_000_000),
    databasePoolSize: integer(env, 'DATABASE_POOL_SIZE', DEFAULT_POOL_SIZE, 1, 1000),
    databaseLockTimeoutMs: integer(env, 'DATABASE_LOCK_TIMEOUT_MS', LOCK_TIMEOUT_MS, 1, 600_000),
    maxJsonDepth: integer(env, 'MAX_JSON_DEPTH', 64, 2, 1000),
    maxJsonValues: integer(env, 'MAX_JSON_VALUES', 20_000, 100, 10_000_000),
    durability: oneOf(env, 'DURABILITY', ['power-loss', 'process-crash'] as const, 'power-loss'),
    maxQueuedAppends: integer(env, 'MAX_QUEUED_APPENDS', 10_000, 1, 1_000_000),
    subscriberBacklogLimit: integer(env, 'SUBSCRIBER_BACKLOG_LIMIT', 16_384, 0, 100_000_000),
    subscriberBacklogWaitMs: integer(env, 'SUBSCRIBER_BACKLOG_WAIT_MS', 1000, 1, 60_000),
    consumerCommitIntervalMs: integer(env, 'CONSUMER_COMMIT_INTERVAL_MS', 0, 0, 1000),
    storageThreadHeapMb: integer(env, 'STORAGE_THREAD_HEAP_MB', 1024, MIN_STORAGE_THREAD_HEAP_MB, 65_536),
    // An in-memory database cannot be shared with another thread.
    storageThread: oneOf(env, 'STORAGE_THREAD', ['on', 'off'] as const, 'on') === 'on' && !postgres && sqlitePath !== ':memory:',
    trustProxy: trustProxyOf(env.TRUST_PROXY),
    ...publicUrlOf(env.PUBLIC_URL),
    webhookAllowedHosts: env.WEBHOOK_ALLOWED_HOSTS ?? '',
    webhookRetrySchedule: env.WEBHOOK_RETRY_SCHEDULE || undefined,
    breakerThreshold: env.ROUTING_BREAKER_THRESHOLD || undefined,
    breakerCooldownSeconds: env.ROUTING_BREAKER_COOLDOWN || undefined,
    routingConcurrency: integer(env, 'ROUTING_CONCURRENCY', 32, 1, 1000),
    routingWorkerId: env.ROUTING_WORKER_ID || undefined,
    replayRatePerSecond: integer(env, 'ROUTING_REPLAY_RATE', 50, 1, 100_000),
    secretKey: secretKey(env.INTAKE_SECRET_KEY),
    idempotencyWindowHours: integer(env, 'IDEMPOTENCY_WINDOW_HOURS', 24, 1, 24 * 365),
    deliveryRetentionDays: integer(env, 'DELIVERY_RETENTION_DAYS', 30, 0, 3650),
    natsUrl: natsServers(brokerUrl(env, 'NATS_URL', NATS_SERVERS, 'nats://host:4222 (a comma list for a cluster)')),
    rabbitmqUrl: brokerUrl(env, 'RABBITMQ_URL', /^amqps?:\/\/\S+$/, 'amqp://user:password@host:5672'),
    redisUrl: brokerUrl(env, 'REDIS_URL', /^rediss?:\/\/\S+$/, 'redis://host:6379'),
    queueBrokers: queueBrokers(env.QUEUE_BROKERS),
  };
  checkContextSettings(config, env);
  return config;
}

/**
 * The settings the contexts read as they are built, read once now: a malformed one stops the start at
 * once with the other configuration errors, not seconds later, after the database was opened.
 */
function checkContextSettings(config: Config, env: NodeJS.ProcessEnv): void {
  try {
    parseAllowedHosts(config.webhookAllowedHosts);
  } catch (error) {
    throw new ConfigError(`WEBHOOK_ALLOWED_HOSTS: ${(error as Error).message}`);
  }
  try {
    parseRetrySchedule(config.webhookRetrySchedule);
    parseBreakerPolicy(config.breakerThreshold, config.breakerCooldownSeconds);
    attributionOptionsFromEnv(env);
  } catch (error) {
    // These name their variable already.
    throw new ConfigError((error as Error).message);
  }
}

/**
 * Two deployments on one NATS need different streams over different subjects: a stream's subjects may
 * not overlap another's. So the prefix follows the stream (`INTAKE` → `intake`, `STAGING` → `staging`).
 */
function subjectPrefix(text: string | undefined, stream: string): string {
  const prefix = text || stream.toLowerCase();
  if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(prefix) || prefix.length > 64) {
    throw new ConfigError(`NATS_SUBJECT_PREFIX must be dot-separated tokens of a-z, 0-9, _ and - (got "${prefix}")`);
  }
  return prefix;
}

function disabledContexts(text: string | undefined): string[] {
  const names = (text ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  const unknown = names.filter((name) => !(OPTIONAL_CONTEXTS as readonly string[]).includes(name));
  if (unknown.length > 0) throw new ConfigError(`INTAKE_DISABLE may name ${OPTIONAL_CONTEXTS.join(', ')} (unknown: ${unknown.join(', ')})`);
  // Processing takes the items validation passed: without validation it would wait for ever, its items
  // "ingested" for good while readiness said all was well.
  if (names.includes('validation') && !names.includes('processing')) {
    throw new ConfigError(
      'INTAKE_DISABLE=validation leaves processing waiting for the verdicts validation gives: disable processing too, or keep validation (without schemas it passes every item)',
    );
  }
  return names;
}

/** `orders=redis://cache:6379, events=nats://a:4222,nats://b:4222`: a comma before `name=` starts the next one. */
function queueBrokers(text: string | undefined): Record<string, string> {
  const brokers: Record<string, string> = {};
  for (const entry of (text ?? '').split(/,(?=\s*[A-Za-z][\w-]*=)/)) {
    if (entry.trim() === '') continue;
    const match = /^\s*([A-Za-z][\w-]{0,63})=((?:nats|amqps?|rediss?):\/\/\S+)\s*$/.exec(entry);
    if (!match?.[1] || !match[2]) {
      throw new ConfigError(
        `QUEUE_BROKERS entries are name=url with a nats://, amqp(s):// or redis(s):// URL (got "${redactUrl(entry.trim())}")`,
      );
    }
    brokers[match[1]] = match[2];
  }
  return brokers;
}

// Servers as nats.js takes them: nats://, tls://, ws(s):// URLs or host:port, separated by commas.
const NATS_SERVERS = /^\s*(?:(?:nats|tls|wss?):\/\/[^\s,]+|[\w.-]+:\d+)(?:\s*,\s*(?:(?:nats|tls|wss?):\/\/[^\s,]+|[\w.-]+:\d+))*\s*$/;

/** Each server of NATS_URL as the client will read it: a port out of range would be retried for ever as "Invalid URL". */
function natsServers(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  for (const server of raw.split(',').map((entry) => entry.trim())) {
    const port = /:\/\//.test(server) ? portOf(server) : Number(server.slice(server.lastIndexOf(':') + 1));
    if (port === undefined || port < 1 || port > 65_535)
      throw new ConfigError(`NATS_URL names a server with no valid address: "${redactUrl(server)}"`);
  }
  return raw;
}

function portOf(url: string): number | undefined {
  try {
    const port = new URL(url).port;
    return port === '' ? 4222 : Number(port);
  } catch {
    return undefined;
  }
}

/** A broker's URL, checked at start-up: a typo would otherwise surface only at the first publish. */
function brokerUrl(env: NodeJS.ProcessEnv, name: string, shape: RegExp, example: string): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (!shape.test(raw)) throw new ConfigError(`${name} must be a URL such as ${example} (got "${redactUrl(raw)}")`);
  return raw;
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  // Decimal digits only: Number() would take 0x4C9A or 1e3.
  const value = /^-?\d+$/.test(raw.trim()) ? Number(raw) : Number.NaN;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer between ${min} and ${max} (got "${raw}")`);
  }
  return value;
}

/** Who may tell the client's address: no one, the nearest `n` hops, or proxies at these addresses. */
export type TrustProxy = false | number | string;

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/**
 * `true` is one hop: the address the proxy itself appended to X-Forwarded-For. Believing every hop
 * would take the leftmost, which the client writes: behind nginx or a cloud load balancer it could
 * name any address as its own.
 */
function publicUrlOf(raw: string | undefined): { publicUrl?: URL } {
  if (!raw) return {};
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  if (!url || !/^https?:$/.test(url.protocol) || url.username || url.password || url.search || url.hash)
    throw new ConfigError(
      `PUBLIC_URL must be an http(s) URL without credentials, query or fragment, such as https://intake.example.com (got "${raw}")`,
    );
  return { publicUrl: url };
}

function trustProxyOf(raw: string | undefined): TrustProxy {
  if (raw === undefined || raw === '' || raw === 'false') return false;
  if (raw === 'true') return 1;
  if (/^\d+$/.test(raw)) {
    const hops = Number(raw);
    if (hops >= 1 && hops <= 16) return hops;
  } else {
    const entries = raw.split(',').map((entry) => entry.trim());
    if (entries.every(isProxyAddress)) return entries.join(',');
  }
  throw new ConfigError(
    `TRUST_PROXY must be true (one proxy), false, a number of proxies from 1 to 16, or their addresses and networks ` +
      `separated by commas (10.0.0.0/8,loopback) (got "${raw}")`,
  );
}

function isProxyAddress(entry: string): boolean {
  if (PROXY_NAMES.has(entry)) return true;
  const [address = '', prefix, ...rest] = entry.split('/');
  const version = isIP(address);
  if (version === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  if (!/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (version === 4 ? 32 : 128);
}

function oneOf<T extends string>(env: NodeJS.ProcessEnv, name: string, allowed: readonly T[], fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  // `LOG_LEVEL=DEBUG` means what it says: the words are matched whatever their case.
  const value = raw.trim().toLowerCase();
  if (!(allowed as readonly string[]).includes(value)) throw new ConfigError(`${name} must be one of ${allowed.join(', ')} (got "${raw}")`);
  return value as T;
}

/** A token sent as `Authorization: Bearer <token>`: one with a space or a control character could never be sent. */
/** Checked before anything is opened: its length was refused only once the database was made. */
function secretKey(value: string | undefined): string | undefined {
  if (!value) return undefined;
  if (value.length < 16) throw new ConfigError('INTAKE_SECRET_KEY must be at least 16 characters');
  return value;
}

/** The prefix of every PostgreSQL schema name, which goes into DDL where it cannot be a parameter. */
function schemaPrefix(value: string | undefined): string {
  if (!value) return '';
  if (!/^[a-z_][a-z0-9_]*$/.test(value))
    throw new ConfigError(
      `DB_SCHEMA_PREFIX must be lower-case letters, digits and _, starting with a letter or _: ${JSON.stringify(value)}`,
    );
  return value;
}

function bearerToken(value: string | undefined, name: string): string | undefined {
  if (!value) return undefined;
  if (!/^[\x21-\x7e]+$/.test(value)) {
    throw new ConfigError(`${name} must be printable ASCII without spaces, as an Authorization: Bearer header carries it`);
  }
  return value;
}

function redactUrl(url: string): string {
  return withoutPassword(url.replace(/\/\/[^@/]*@/, '//***@'));
}
