import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Durability } from '../shared/event-store/sqlite/sqlite-event-store.js';
import { DEFAULT_PORTS, parseRoles, type Role } from './roles.js';

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly databaseUrl: string;
  /** Which services this process runs: `all` (embedded) or roles of the distributed mode. */
  readonly roles: Role[] | 'all';
  /** Each role keeps its tables in the PostgreSQL schema `<prefix><role>`. */
  readonly schemaPrefix: string;
  readonly natsStream: string;
  /** Contexts left out of the embedded process (INTAKE_DISABLE, comma list): for benchmarks and lean deployments. */
  readonly disabledContexts: readonly string[];
  /** Where generated secrets live: beside the SQLite file, or ./data. */
  readonly dataDir: string;
  readonly adminToken: string | undefined;
  /** When set, GET /metrics needs it as a bearer token; otherwise /metrics is public. */
  readonly metricsToken: string | undefined;
  readonly logLevel: string;
  readonly bodyLimitBytes: number;
  readonly durability: Durability;
  /** Appends waiting for their commit beyond which ingest answers 503. */
  readonly maxQueuedAppends: number;
  /** Private hosts and CIDRs webhooks may reach (WEBHOOK_ALLOWED_HOSTS, comma list). */
  readonly webhookAllowedHosts: string;
  /** Seconds between webhook attempts (WEBHOOK_RETRY_SCHEDULE, comma list). */
  readonly webhookRetrySchedule: string | undefined;
  readonly idempotencyWindowHours: number;
  /** Default brokers of `queue` destinations. */
  readonly natsUrl: string | undefined;
  readonly rabbitmqUrl: string | undefined;
  readonly redisUrl: string | undefined;
}

export class ConfigError extends Error {}

/** Reads `.env` (if present) into the environment without overriding what is already set. */
export function loadDotEnv(path = '.env'): void {
  if (existsSync(path)) process.loadEnvFile(path);
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const databaseUrl = env.DATABASE_URL ?? 'sqlite:./data/intake.db';
  const postgres = /^postgres(ql)?:\/\//.test(databaseUrl);
  if (!databaseUrl.startsWith('sqlite:') && !postgres) {
    throw new ConfigError(`DATABASE_URL must be a sqlite: or postgres:// URL (got ${redactUrl(databaseUrl)})`);
  }
  let roles: Role[] | 'all';
  try {
    roles = parseRoles(env.ROLE);
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  if (postgres && !env.NATS_URL) throw new ConfigError('the distributed mode (a postgres:// DATABASE_URL) needs NATS_URL');
  if (!postgres && roles !== 'all')
    throw new ConfigError('ROLE selects services of the distributed mode: it needs a postgres:// DATABASE_URL and NATS_URL');
  const singleRole = roles !== 'all' && roles.length === 1 ? roles[0] : undefined;
  const sqlitePath = postgres ? './data/intake.db' : databaseUrl.slice('sqlite:'.length).replace(/^\/\//, '');
  return {
    port: integer(env, 'PORT', singleRole ? DEFAULT_PORTS[singleRole] : 8000, 0, 65535),
    roles,
    schemaPrefix: env.DB_SCHEMA_PREFIX ?? '',
    natsStream: env.NATS_STREAM ?? 'INTAKE',
    disabledContexts: disabledContexts(env.INTAKE_DISABLE),
    host: env.HOST ?? '0.0.0.0',
    databaseUrl,
    dataDir: env.DATA_DIR ?? (sqlitePath === ':memory:' ? resolve('data') : dirname(resolve(sqlitePath))),
    adminToken: env.ADMIN_TOKEN || undefined,
    metricsToken: env.METRICS_TOKEN || undefined,
    logLevel: oneOf(env, 'LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
    bodyLimitBytes: integer(env, 'BODY_LIMIT', 1024 * 1024, 1024, 64 * 1024 * 1024),
    durability: oneOf(env, 'DURABILITY', ['power-loss', 'process-crash'] as const, 'power-loss'),
    maxQueuedAppends: integer(env, 'MAX_QUEUED_APPENDS', 10_000, 1, 1_000_000),
    webhookAllowedHosts: env.WEBHOOK_ALLOWED_HOSTS ?? '',
    webhookRetrySchedule: env.WEBHOOK_RETRY_SCHEDULE || undefined,
    idempotencyWindowHours: integer(env, 'IDEMPOTENCY_WINDOW_HOURS', 24, 1, 24 * 365),
    natsUrl: env.NATS_URL || undefined,
    rabbitmqUrl: env.RABBITMQ_URL || undefined,
    redisUrl: env.REDIS_URL || undefined,
  };
}

const OPTIONAL_CONTEXTS = ['validation', 'processing', 'query', 'routing', 'statistics', 'tracking', 'attribution'];

function disabledContexts(text: string | undefined): string[] {
  const names = (text ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  const unknown = names.filter((name) => !OPTIONAL_CONTEXTS.includes(name));
  if (unknown.length > 0) throw new ConfigError(`INTAKE_DISABLE may name ${OPTIONAL_CONTEXTS.join(', ')} (unknown: ${unknown.join(', ')})`);
  return names;
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer between ${min} and ${max} (got "${raw}")`);
  }
  return value;
}

function oneOf<T extends string>(env: NodeJS.ProcessEnv, name: string, allowed: readonly T[], fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!(allowed as readonly string[]).includes(raw)) throw new ConfigError(`${name} must be one of ${allowed.join(', ')} (got "${raw}")`);
  return raw as T;
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
