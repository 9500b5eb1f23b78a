import { promises as dns } from 'node:dns';
import { isIP } from 'node:net';
import { ValidationError } from '../../../shared/errors.js';
import type { QueuePublisher, QueueTarget } from '../../application/destination.js';
import { destinationPolicy } from '../webhook/destination-policy.js';
import { hostProblem } from '../webhook/assert-public-url.js';
import { describeError, measured, redactUrl, refusedAll, retry, type PublishResult } from './publish-outcome.js';

/**
 * Queue destinations follow the webhooks' address policy: a rule author's broker URL may not point
 * at a private, loopback or link-local address (the service's own Redis, a cloud metadata endpoint)
 * unless WEBHOOK_ALLOWED_HOSTS allows it. Brokers the operator configured are trusted: the defaults
 * (NATS_URL, RABBITMQ_URL, REDIS_URL), used when a rule names no URL, and the named ones
 * (QUEUE_BROKERS) a rule refers to with `connection`, which is the way to reach an internal broker.
 */

/** QUEUE_BROKERS: broker name → URL. */
export type NamedBrokers = Readonly<Record<string, string>>;

const DEFAULT_URL_VARIABLE: Record<QueueTarget['broker'], string> = { nats: 'NATS_URL', rabbitmq: 'RABBITMQ_URL', redis: 'REDIS_URL' };

const SCHEMES: Record<QueueTarget['broker'], RegExp> = { nats: /^nats:\/\//, rabbitmq: /^amqps?:\/\//, redis: /^rediss?:\/\// };

function namedUrl(brokers: NamedBrokers, name: string): string | undefined {
  return Object.hasOwn(brokers, name) ? brokers[name] : undefined;
}

/**
 * The checks made when a rule is saved: a named broker exists and is of the rule's kind; a URL passes
 * the policy; a rule with neither has a default broker of its kind to go to (when `defaults` is known),
 * rather than dead-lettering every delivery.
 */
export function assertQueueDestination(
  target: Pick<QueueTarget, 'broker' | 'url' | 'connection'>,
  allowedHosts: readonly string[],
  brokers: NamedBrokers,
  defaults?: ReadonlySet<QueueTarget['broker']>,
): void {
  if (target.connection === undefined && target.url === undefined && defaults !== undefined && !defaults.has(target.broker)) {
    const variable = DEFAULT_URL_VARIABLE[target.broker];
    const problem = `no ${target.broker} broker is configured: set destination_config.url or connection, or start the server with ${variable}`;
    throw new ValidationError('routing.invalid-destination', `destination_config ${problem}`, [
      { path: 'destination_config', message: problem },
    ]);
  }
  if (target.connection !== undefined) {
    const url = namedUrl(brokers, target.connection);
    const names = Object.keys(brokers);
    const problem =
      url === undefined
        ? `names no configured broker (QUEUE_BROKERS has ${names.length > 0 ? names.join(', ') : 'none'})`
        : SCHEMES[target.broker].test(url)
          ? undefined
          : `names a broker that is not a ${target.broker} broker`;
    if (problem !== undefined) {
      throw new ValidationError('routing.invalid-destination', `destination_config.connection ${problem}`, [
        { path: 'destination_config.connection', message: problem },
      ]);
    }
  }
  if (target.url !== undefined) assertBrokerUrl(target.url, allowedHosts);
}

/**
 * The hosts a broker URL names (NATS takes a comma-separated list of servers), or why it names none the
 * policy can judge. URLs of these schemes keep a host as written, so each is read again as a web URL's
 * host would be: `0x7f.1` and `2130706433` are 127.0.0.1 to the resolver, and must be to the policy too.
 *
 * The clients connect to more than the host, so a rule's URL may not leave it to them: without a host
 * ioredis and amqplib go to localhost, and ioredis takes `host`, `port` and a Unix socket `path` from
 * the query string. A broker that needs options is configured by the operator (QUEUE_BROKERS).
 */
// amqplib's query options tune the connection and name no other place to connect to.
const TUNING_OPTIONS = new Set(['heartbeat', 'frameMax', 'channelMax', 'locale']);

function hostsOf(url: string): { readonly hosts: string[] } | { readonly problem: string } {
  const hosts: string[] = [];
  for (const part of url.split(',')) {
    if (!URL.canParse(part.trim())) return { problem: 'it is not an absolute URL' };
    const parsed = new URL(part.trim());
    if (parsed.hostname === '') return { problem: 'it names no host (the client would connect to this machine)' };
    const options = [...parsed.searchParams.keys()].filter((name) => !TUNING_OPTIONS.has(name));
    if (options.length > 0 || parsed.hash !== '') {
      return {
        problem: `it carries options (${options.join(', ') || parsed.hash}) the client may read as another host, port or socket; configure such a broker in QUEUE_BROKERS`,
      };
    }
    const host = parsed.hostname;
    hosts.push(URL.canParse(`http://${host}`) ? new URL(`http://${host}`).hostname : host);
  }
  return { hosts };
}

/** Why the policy refuses a broker URL on its text (no host, options in its query, IP literals, localhost), if it does. */
function urlProblem(url: string, allowedHosts: readonly string[]): string | undefined {
  const read = hostsOf(url);
  return 'problem' in read ? read.problem : read.hosts.map((host) => hostProblem(host, allowedHosts)).find(Boolean);
}

/** The check made when a rule is saved, on the URL text. */
export function assertBrokerUrl(url: string, allowedHosts: readonly string[] = []): void {
  const problem = urlProblem(url, allowedHosts);
  if (problem !== undefined) {
    throw new ValidationError('routing.invalid-destination', `invalid broker URL: ${problem}`, [
      { path: 'destination_config.url', message: problem },
    ]);
  }
}

export type Resolve = (hostname: string) => Promise<readonly string[]>;
const systemResolve: Resolve = async (hostname) => (await dns.lookup(hostname, { all: true })).map((a) => a.address);

/**
 * Checks a rule's broker URL again before each publish: its text (a rule saved before a check was
 * added is held to it too) and the addresses its host names resolve to now (a name can point
 * anywhere). The delivery is rejected when the policy refuses one, and tried again later when a name
 * does not resolve: an unchecked name is never handed to the client.
 */
export function addressCheckedQueuePublisher(
  inner: QueuePublisher,
  allowedHosts: readonly string[],
  brokers: NamedBrokers = {},
  resolve: Resolve = systemResolve,
): QueuePublisher {
  const policy = destinationPolicy(allowedHosts);
  const verdictOf = async (url: string): Promise<PublishResult | undefined> => {
    const refused = (problem: string) => refusedAll(`broker ${redactUrl(url)} refused: ${problem}`);
    const read = hostsOf(url);
    if ('problem' in read) return refused(read.problem);
    for (const host of read.hosts) {
      const hostname = host.replace(/^\[|\]$/g, '');
      if (policy.allowsHostname(hostname)) continue;
      let addresses: readonly string[];
      try {
        addresses = isIP(hostname) !== 0 ? [hostname] : await resolve(hostname);
      } catch (error) {
        return retry(`broker host ${hostname} does not resolve: ${describeError(error)}`);
      }
      if (addresses.length === 0) return retry(`broker host ${hostname} resolves to no address`);
      for (const address of addresses) {
        const refusal = policy.refusal(hostname, address);
        if (refusal !== undefined) return refused(refusal);
      }
    }
    return undefined;
  };
  return {
    async publish(target, request) {
      if (target.connection !== undefined) {
        const url = namedUrl(brokers, target.connection);
        if (url === undefined) return measured(async () => refusedAll(`no broker named "${target.connection}" in QUEUE_BROKERS`));
        return inner.publish({ ...target, url }, request);
      }
      if (target.url !== undefined) {
        const verdict = await verdictOf(target.url);
        if (verdict !== undefined) return measured(async () => verdict);
      }
      return inner.publish(target, request);
    },
    close: () => inner.close(),
  };
}
