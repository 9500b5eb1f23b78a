import { BlockList, isIP } from 'node:net';
import { ValidationError } from '../../../shared/errors.js';

/**
 * Which addresses a webhook may reach. Rule authors choose webhook URLs, so without this check a rule
 * could make the service call its own admin API, a database port or a cloud metadata endpoint (SSRF).
 * Everything that is not a public unicast address is refused unless an operator allowed it.
 */
export interface DestinationPolicy {
  /** Why connecting to `address` (resolved from `hostname`) is refused, or undefined when it is allowed. */
  refusal(hostname: string, address: string): string | undefined;
  /** True when the operator allowed this host name whatever it resolves to. */
  allowsHostname(hostname: string): boolean;
}

type Family = 'ipv4' | 'ipv6';
type Range = readonly [network: string, prefix: number, family: Family];

const NON_PUBLIC_RANGES: readonly Range[] = [
  ['0.0.0.0', 8, 'ipv4'], // "this network", includes the unspecified 0.0.0.0
  ['10.0.0.0', 8, 'ipv4'], // private
  ['100.64.0.0', 10, 'ipv4'], // carrier-grade NAT
  ['127.0.0.0', 8, 'ipv4'], // loopback
  ['169.254.0.0', 16, 'ipv4'], // link-local, where cloud metadata endpoints live
  ['172.16.0.0', 12, 'ipv4'], // private
  ['192.0.0.0', 24, 'ipv4'], // IETF protocol assignments
  ['192.0.2.0', 24, 'ipv4'], // documentation
  ['192.168.0.0', 16, 'ipv4'], // private
  ['198.18.0.0', 15, 'ipv4'], // benchmarking
  ['198.51.100.0', 24, 'ipv4'], // documentation
  ['203.0.113.0', 24, 'ipv4'], // documentation
  ['224.0.0.0', 4, 'ipv4'], // multicast
  ['240.0.0.0', 4, 'ipv4'], // reserved, includes broadcast
  // IPv4-mapped addresses (::ffff:a.b.c.d) need no rule: BlockList matches them against the IPv4 rules.
  ['::', 96, 'ipv6'], // unspecified, loopback and the deprecated IPv4-compatible addresses
  ['64:ff9b:1::', 48, 'ipv6'], // local-use NAT64
  ['100::', 64, 'ipv6'], // discard-only
  ['2001:db8::', 32, 'ipv6'], // documentation
  ['fc00::', 7, 'ipv6'], // unique-local
  ['fe80::', 10, 'ipv6'], // link-local
  ['fec0::', 10, 'ipv6'], // deprecated site-local
  ['ff00::', 8, 'ipv6'], // multicast
];

const nonPublic = new BlockList();
for (const [network, prefix, family] of NON_PUBLIC_RANGES) nonPublic.addSubnet(network, prefix, family);

/**
 * IPv6 ranges that carry an IPv4 address: a packet sent there ends up at that IPv4 address (through a
 * NAT64 gateway, a 6to4 relay or a Teredo relay), so each is judged by the IPv4 addresses it embeds.
 */
const TUNNELS: readonly (readonly [network: string, prefix: number, embedded: (groups: readonly number[]) => string[]])[] = [
  ['64:ff9b::', 96, (groups) => [ipv4At(groups, 6)]], // well-known NAT64: the last 32 bits
  ['2002::', 16, (groups) => [ipv4At(groups, 1)]], // 6to4: bits 16..47
  // Teredo: the server's address in bits 32..63 and the client's in the last 32 bits, inverted.
  ['2001::', 32, (groups) => [ipv4At(groups, 2), ipv4At(groups, 6, 0xffff)]],
];

const tunnels = TUNNELS.map(([network, prefix, embedded]) => {
  const range = new BlockList();
  range.addSubnet(network, prefix, 'ipv6');
  return { range, embedded };
});

/** True for addresses that are not public unicast: private, loopback, link-local, CGNAT, multicast... */
export function isNonPublicAddress(address: string): boolean {
  const family = familyOf(address);
  if (family === undefined) return true;
  if (family === 'ipv6') {
    const tunnel = tunnels.find(({ range }) => range.check(address, 'ipv6'));
    if (tunnel !== undefined) return tunnel.embedded(groupsOf(address)).some(isNonPublicAddress);
  }
  return nonPublic.check(address, family);
}

/**
 * `WEBHOOK_ALLOWED_HOSTS`: host names, IP addresses and CIDRs separated by commas or spaces,
 * e.g. `hooks.internal, 10.1.0.0/16, ::1`. Throws a ValidationError naming the first malformed entry.
 */
export function parseAllowedHosts(text: string | undefined): string[] {
  const entries = (text ?? '')
    .split(/[\s,]+/)
    .map((entry) => entry.trim().toLowerCase())
    .filter((entry) => entry !== '');
  for (const entry of entries) {
    if (parseAllowedEntry(entry) === undefined) {
      throw new ValidationError('routing.invalid-allowed-hosts', `"${entry}" is neither a host name, an IP address nor a CIDR`);
    }
  }
  return entries;
}

export function destinationPolicy(allowedHosts: readonly string[] = []): DestinationPolicy {
  const allowedNames = new Set<string>();
  const allowedAddresses = new BlockList();
  for (const text of allowedHosts) {
    const entry = parseAllowedEntry(text.trim().toLowerCase());
    if (entry === undefined) {
      throw new ValidationError('routing.invalid-allowed-hosts', `"${text}" is neither a host name, an IP address nor a CIDR`);
    }
    if (entry.kind === 'hostname') allowedNames.add(entry.hostname);
    else allowedAddresses.addSubnet(entry.network, entry.prefix, entry.family);
  }
  const allowsHostname = (hostname: string) => allowedNames.has(normalizeHostname(hostname));
  return {
    allowsHostname,
    refusal(hostname, address) {
      if (allowsHostname(hostname) || !isNonPublicAddress(address)) return undefined;
      const family = familyOf(address);
      if (family !== undefined && allowedAddresses.check(address, family)) return undefined;
      const via = normalizeHostname(hostname) === address ? '' : ` (resolved from ${hostname})`;
      return `destination address ${address}${via} is not a public address; allow it with WEBHOOK_ALLOWED_HOSTS`;
    },
  };
}

type AllowedEntry =
  | { readonly kind: 'hostname'; readonly hostname: string }
  | { readonly kind: 'subnet'; readonly network: string; readonly prefix: number; readonly family: Family };

const HOSTNAME = /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/;

function parseAllowedEntry(entry: string): AllowedEntry | undefined {
  const [network = '', prefixText, ...rest] = entry.split('/');
  const family = familyOf(network);
  if (family !== undefined && rest.length === 0) {
    const maxPrefix = family === 'ipv4' ? 32 : 128;
    const prefix = prefixText === undefined ? maxPrefix : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : Number.NaN;
    return prefix >= 0 && prefix <= maxPrefix ? { kind: 'subnet', network, prefix, family } : undefined;
  }
  if (prefixText === undefined && HOSTNAME.test(entry)) return { kind: 'hostname', hostname: normalizeHostname(entry) };
  return undefined;
}

/** `Example.COM.` and `example.com` name the same host; URL hosts keep IPv6 literals in brackets. */
function normalizeHostname(hostname: string): string {
  const lower = hostname.toLowerCase().replace(/\.$/, '');
  return lower.startsWith('[') && lower.endsWith(']') ? lower.slice(1, -1) : lower;
}

function familyOf(address: string): Family | undefined {
  const version = isIP(address);
  return version === 4 ? 'ipv4' : version === 6 ? 'ipv6' : undefined;
}

/** The eight 16-bit groups of an IPv6 address, whichever way it is written (`::`, a dotted IPv4 tail, a zone). */
function groupsOf(address: string): number[] {
  const [text = ''] = address.split('%');
  const dotted = /:(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  const hex = dotted === null ? text : `${text.slice(0, dotted.index + 1)}${ipv4Groups(dotted.slice(1).map(Number))}`;
  const [head = '', tail] = hex.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const elided = tail === undefined ? [] : new Array<string>(8 - headGroups.length - tailGroups.length).fill('0');
  return [...headGroups, ...elided, ...tailGroups].map((group) => parseInt(group, 16));
}

/** A dotted IPv4 address's four bytes as two hexadecimal groups. */
function ipv4Groups([a = 0, b = 0, c = 0, d = 0]: readonly number[]): string {
  return `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
}

/** The IPv4 address in groups `at` and `at + 1`, each XORed with `mask`. */
function ipv4At(groups: readonly number[], at: number, mask = 0): string {
  const high = (groups[at] ?? 0) ^ mask;
  const low = (groups[at + 1] ?? 0) ^ mask;
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
}
