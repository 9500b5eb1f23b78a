import { promises as dns } from 'node:dns';
import { isIP } from 'node:net';
import { ValidationError } from '../../../shared/errors.js';
import type { QueuePublisher, QueueTarget } from '../../application/destination.js';
import { destinationPolicy } from '../webhook/destination-policy.js';
import { hostProblem } from '../webhook/assert-public-url.js';
import { measured, redactUrl, rejected } from './publish-outcome.js';

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
 * The hosts a broker URL names: NATS takes a comma-separated list of servers. URLs of these schemes
 * keep a host as written, so each is read again as a web URL's host would be: `0x7f.1` and
 * `2130706433` are 127.0.0.1 to the resolver, and must be to the policy too.
 */
function hostsOf(url: string): string[] | undefined {
  const hosts: string[] = [];
  for (const part of url.split(',')) {
    if (!URL.canParse(part.trim())) return undefined;
    const host = new URL(part.trim()).hostname;
    hosts.push(URL.canParse(`http://${host}`) ? new URL(`http://${host}`).hostname : host);
  }
  return hosts;
}

/** The check made when a rule is saved, on the URL text: IP literals and localhost. */
export function assertBrokerUrl(url: string, allowedHosts: readonly string[] = []): void {
  const hosts = hostsOf(url);
  const problem = hosts === undefined ? 'it is not an absolute URL' : hosts.map((host) => hostProblem(host, allowedHosts)).find(Boolean);
  if (problem !== undefined) {
    throw new ValidationError('routing.invalid-destination', `invalid broker URL: ${problem}`, [
      { path: 'destination_config.url', message: problem },
    ]);
  }
}

export type Resolve = (hostname: string) => Promise<readonly string[]>;
const systemResolve: Resolve = async (hostname) => (await dns.lookup(hostname, { all: true })).map((a) => a.address);

/**
 * Checks a rule's broker URL again before each publish, on the addresses its host names resolve to
 * now (a name can point anywhere), and rejects the delivery when the policy refuses one of them.
 */
export function addressCheckedQueuePublisher(
  inner: QueuePublisher,
  allowedHosts: readonly string[],
  brokers: NamedBrokers = {},
  resolve: Resolve = systemResolve,
): QueuePublisher {
  const policy = destinationPolicy(allowedHosts);
  const refusalOf = async (url: string): Promise<string | undefined> => {
    for (const host of hostsOf(url) ?? []) {
      const hostname = host.replace(/^\[|\]$/g, '');
      if (policy.allowsHostname(hostname)) continue;
      const addresses = isIP(hostname) !== 0 ? [hostname] : await resolve(hostname).catch(() => []);
      for (const address of addresses) {
        const refusal = policy.refusal(hostname, address);
        if (refusal !== undefined) return refusal;
      }
    }
    return undefined;
  };
  return {
    async publish(target, request) {
      if (target.connection !== undefined) {
        const url = namedUrl(brokers, target.connection);
        if (url === undefined) return measured(async () => rejected(`no broker named "${target.connection}" in QUEUE_BROKERS`));
        return inner.publish({ ...target, url }, request);
      }
      if (target.url !== undefined) {
        const refusal = await refusalOf(target.url);
        if (refusal !== undefined) return measured(async () => rejected(`broker ${redactUrl(target.url ?? '')} refused: ${refusal}`));
      }
      return inner.publish(target, request);
    },
    close: () => inner.close(),
  };
}
