import { promises as dns, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { buildConnector } from 'undici';
import type { DestinationPolicy } from './destination-policy.js';

/** A connection the destination policy forbids: never worth retrying as configured. */
export class DestinationRefusedError extends Error {
  readonly code = 'INTAKE_DESTINATION_REFUSED';
}

/** Resolves a host name to every address it has; node:dns unless a test brings its own. */
export type Resolver = (hostname: string, options: LookupOptions) => Promise<LookupAddress[]>;

const systemResolver: Resolver = (hostname, options) => dns.lookup(hostname, { ...options, all: true });

/**
 * The `lookup` given to the socket: it resolves the name itself and refuses the connection when any of
 * the addresses is forbidden. Checking here, on the addresses the socket is about to use, rather than on
 * the URL text defeats DNS rebinding (a name answering public at save time and private at send time).
 */
export function guardedLookup(policy: DestinationPolicy, resolve: Resolver = systemResolver): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, options).then(
      (addresses) => {
        const refusals = addresses.map(({ address }) => policy.refusal(hostname, address)).filter((reason) => reason !== undefined);
        const [first] = addresses;
        if (refusals[0] !== undefined) callback(new DestinationRefusedError(refusals[0]), '');
        else if (first === undefined) callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '');
        // net asks for every address when it races IPv4 and IPv6 (autoSelectFamily), for one otherwise.
        else if (options.all === true) callback(null, addresses);
        else callback(null, first.address, first.family);
      },
      (error: NodeJS.ErrnoException) => callback(error, ''),
    );
  };
}

export interface GuardedConnectorOptions {
  readonly connectTimeoutMs: number;
  readonly resolve?: Resolver;
}

/**
 * An undici connector that applies the policy at connection time. Literal IP hosts never reach the
 * socket's `lookup`, so they are checked here before connecting, by the same policy.
 */
export function guardedConnector(policy: DestinationPolicy, options: GuardedConnectorOptions): buildConnector.connector {
  const connect = buildConnector({ timeout: options.connectTimeoutMs, lookup: guardedLookup(policy, options.resolve) });
  return (connectOptions, callback) => {
    const refusal = isIP(connectOptions.hostname) === 0 ? undefined : policy.refusal(connectOptions.hostname, connectOptions.hostname);
    if (refusal !== undefined) callback(new DestinationRefusedError(refusal), null);
    else connect(connectOptions, callback);
  };
}
