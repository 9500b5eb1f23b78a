import { isIP } from 'node:net';
import { ValidationError } from '../../../shared/errors.js';
import { destinationPolicy } from './destination-policy.js';

const MAX_URL_LENGTH = 2048;

/**
 * The check made when a rule is saved, on the URL text alone: it catches mistakes early with a clear
 * message. It cannot see what a host name will resolve to, so the sender checks again at connection time.
 */
export function assertPublicUrl(url: string, allowedHosts: readonly string[] = []): void {
  const problem = urlProblem(url, allowedHosts);
  if (problem !== undefined) {
    throw new ValidationError('routing.invalid-destination', `invalid webhook URL: ${problem}`, [
      { path: 'destination_config.url', message: problem },
    ]);
  }
}

function urlProblem(text: string, allowedHosts: readonly string[]): string | undefined {
  if (text.length > MAX_URL_LENGTH) return `it is longer than ${MAX_URL_LENGTH} characters`;
  if (!URL.canParse(text)) return 'it is not an absolute URL';
  const url = new URL(text);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `the scheme ${url.protocol.slice(0, -1)} is not http or https`;
  if (url.username !== '' || url.password !== '') return 'credentials do not belong in the URL: use destination headers';
  return hostProblem(url.hostname, allowedHosts);
}

/**
 * Why a URL's host is refused by the address policy, judged on its text: an IP literal that is not
 * public, or `localhost`, unless allowed. Shared by webhook and queue broker URLs.
 */
export function hostProblem(urlHostname: string, allowedHosts: readonly string[]): string | undefined {
  const policy = destinationPolicy(allowedHosts);
  const hostname = urlHostname.replace(/^\[|\]$/g, '');
  if (isIP(hostname) !== 0) return policy.refusal(hostname, hostname);
  if (isLocalhost(hostname) && !policy.allowsHostname(hostname)) return `${hostname} is this machine; allow it with WEBHOOK_ALLOWED_HOSTS`;
  return undefined;
}

/** `localhost` and its subdomains always resolve to loopback (RFC 6761). */
function isLocalhost(hostname: string): boolean {
  const name = hostname.toLowerCase().replace(/\.$/, '');
  return name === 'localhost' || name.endsWith('.localhost');
}
