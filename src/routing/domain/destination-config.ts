import { unknownFields } from '../../shared/contracts/known-fields.js';
import { ValidationError, type Violation } from '../../shared/errors.js';

export type DestinationType = 'webhook' | 'database' | 'queue';
export const DESTINATION_TYPES: readonly DestinationType[] = ['webhook', 'database', 'queue'];

export type WebhookConfig = { url: string; headers?: Record<string, string> };
export type DatabaseConfig = { table: string };
/** `connection` names a broker the operator configured (QUEUE_BROKERS); `url` is the rule author's own. */
export type QueueConfig =
  | { broker: 'nats'; subject: string; url?: string; connection?: string }
  | { broker: 'rabbitmq'; exchange: string; routing_key: string; url?: string; connection?: string }
  | { broker: 'redis'; stream: string; url?: string; connection?: string };
export type DestinationConfig = WebhookConfig | DatabaseConfig | QueueConfig;

/** A table name that is a plain identifier: quoted in SQL anyway, but never something that needs quoting. */
const TABLE = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const RESERVED_TABLE_PREFIXES = ['sqlite_', 'pg_'];
// A subject one can publish to: no wildcard (`*`, `>`), which the broker refuses on every delivery.
const SUBJECT = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
/**
 * Names a broker takes in a publish: AMQP's exchange and routing key are short strings (255 bytes);
 * a NATS server closes the connection on a control line past 4 KB, failing every rule that shares it.
 */
export const MAX_BROKER_NAME_BYTES = 255;
const HEADER_NAME = /^[A-Za-z0-9-]{1,64}$/;
/** What an HTTP field value may hold (RFC 9110 §5.5): no line break or other control character can be sent. */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const CONNECTION = /^[A-Za-z][\w-]{0,63}$/;

/**
 * Headers Intake sets on every webhook, in lower case: the signature and content type must be what was
 * signed, and the framing headers are the HTTP client's business (a wrong one would corrupt the request).
 * Refused when a rule is saved; the sender drops them from rules stored before.
 */
const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  'webhook-id',
  'webhook-timestamp',
  'webhook-signature',
  'content-type',
  'content-length',
  'transfer-encoding',
  'host',
  'connection',
  'keep-alive',
  'upgrade',
  'expect',
  'te',
]);

export const isReservedHeader = (name: string): boolean => RESERVED_HEADERS.has(name.toLowerCase());

/** The fields each kind of destination reads: any other is refused, as a misspelling would go unnoticed. */
const QUEUE_FIELDS = ['broker', 'url', 'connection'];
const FIELDS: Readonly<Record<string, readonly string[]>> = {
  webhook: ['url', 'headers'],
  database: ['table'],
  nats: [...QUEUE_FIELDS, 'subject'],
  rabbitmq: [...QUEUE_FIELDS, 'exchange', 'routing_key'],
  redis: [...QUEUE_FIELDS, 'stream'],
};

/**
 * Checks a destination's configuration when its rule is saved, listing every problem. `unchanged`: the
 * rule keeps the configuration it has stored, which may hold headers Intake sets from before they were
 * refused (dropped when sending): a change of its name or condition is not refused for them.
 */
export function parseDestination(
  type: unknown,
  config: unknown,
  { unchanged = false }: { unchanged?: boolean } = {},
): { type: DestinationType; config: DestinationConfig } {
  const out: Violation[] = [];
  if (typeof type !== 'string' || !(DESTINATION_TYPES as readonly string[]).includes(type)) {
    throw invalid([{ path: 'destination_type', message: `must be one of ${DESTINATION_TYPES.join(', ')}` }]);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw invalid([{ path: 'destination_config', message: `is required for a ${type} destination` }]);
  }
  const c = config as Record<string, unknown>;
  const text = (key: string, pattern?: RegExp, hint = '') => {
    const value = c[key];
    if (typeof value !== 'string' || value.length === 0) out.push({ path: `destination_config.${key}`, message: 'is required' });
    else if (pattern && !pattern.test(value)) out.push({ path: `destination_config.${key}`, message: `is not valid${hint}` });
    return typeof value === 'string' ? value : '';
  };
  const shortName = (key: string, value: string) => {
    if (Buffer.byteLength(value) > MAX_BROKER_NAME_BYTES)
      out.push({ path: `destination_config.${key}`, message: `must be at most ${MAX_BROKER_NAME_BYTES} bytes` });
    return value;
  };
  const optionalUrl = () => ({
    ...(typeof c.url === 'string' ? { url: c.url } : {}),
    ...(typeof c.connection === 'string' ? { connection: c.connection } : {}),
  });

  let parsed: DestinationConfig | undefined;
  switch (type as DestinationType) {
    case 'webhook': {
      const url = text('url');
      if (url && !isHttpUrl(url))
        out.push({ path: 'destination_config.url', message: 'must be an absolute http(s) URL of at most 2048 characters' });
      const headers = c.headers;
      if (
        headers !== undefined &&
        (typeof headers !== 'object' ||
          headers === null ||
          Array.isArray(headers) ||
          !Object.entries(headers).every(([k, v]) => HEADER_NAME.test(k) && typeof v === 'string'))
      ) {
        out.push({ path: 'destination_config.headers', message: 'must map header names to string values' });
      } else if (headers !== undefined) {
        for (const [name, value] of Object.entries(headers as Record<string, string>)) {
          if (isReservedHeader(name) && !unchanged)
            out.push({ path: `destination_config.headers.${name}`, message: 'is set by Intake on every webhook: remove it' });
          else if (!HEADER_VALUE.test(value))
            out.push({ path: `destination_config.headers.${name}`, message: 'holds a line break or a character HTTP cannot send' });
        }
      }
      parsed = { url, ...(headers ? { headers: headers as Record<string, string> } : {}) };
      break;
    }
    case 'database': {
      const table = text('table', TABLE, ': letters, digits and _, at most 63, not starting with a digit');
      if (RESERVED_TABLE_PREFIXES.some((p) => table.toLowerCase().startsWith(p)))
        out.push({ path: 'destination_config.table', message: 'uses a reserved prefix' });
      parsed = { table };
      break;
    }
    case 'queue': {
      const broker = c.broker;
      if (broker === 'nats') parsed = { broker, subject: shortName('subject', text('subject', SUBJECT)), ...optionalUrl() };
      else if (broker === 'rabbitmq')
        parsed = {
          broker,
          exchange: shortName('exchange', text('exchange')),
          routing_key: shortName('routing_key', typeof c.routing_key === 'string' ? c.routing_key : text('routing_key')),
          ...optionalUrl(),
        };
      else if (broker === 'redis') parsed = { broker, stream: text('stream'), ...optionalUrl() };
      else out.push({ path: 'destination_config.broker', message: 'must be nats, rabbitmq or redis' });
      if (c.url !== undefined && (typeof c.url !== 'string' || !/^(nats|amqps?|rediss?):\/\//.test(c.url))) {
        out.push({ path: 'destination_config.url', message: 'must be a nats://, amqp(s):// or redis(s):// URL' });
      }
      if (c.connection !== undefined && (typeof c.connection !== 'string' || !CONNECTION.test(c.connection))) {
        out.push({ path: 'destination_config.connection', message: 'must name a broker of QUEUE_BROKERS (letters, digits, _ and -)' });
      } else if (c.connection !== undefined && c.url !== undefined) {
        out.push({ path: 'destination_config.connection', message: 'cannot be combined with url' });
      }
      break;
    }
  }
  const known = FIELDS[type === 'queue' ? String(c.broker) : type];
  for (const unknown of known ? unknownFields(c, known, 'destination_config') : []) {
    // A webhook's signing secret is Intake's to make: shown once when the rule is made, replaced by rotate-secret.
    out.push(
      unknown.path === 'destination_config.secret' && type === 'webhook'
        ? {
            path: unknown.path,
            message: 'is generated by Intake: shown once in the answer that creates the rule, replaced by rotate-secret',
          }
        : unknown,
    );
  }
  if (out.length > 0 || !parsed) throw invalid(out);
  return { type: type as DestinationType, config: parsed };
}

function isHttpUrl(text: string): boolean {
  if (text.length > 2048) return false;
  try {
    const url = new URL(text);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname.length > 0;
  } catch {
    return false;
  }
}

function invalid(violations: Violation[]): ValidationError {
  return new ValidationError('routing.invalid-destination', violations.map((v) => `${v.path} ${v.message}`).join('; '), violations);
}
