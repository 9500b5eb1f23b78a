// The stack's safe defaults, apart so they can be tested without starting anything.
import { randomBytes } from 'node:crypto';

/**
 * Where the roles listen and which admin token they share. Loopback unless HOST says otherwise, so a
 * stack started on a laptop is not on the network; never a well-known token: without ADMIN_TOKEN one
 * is generated for this run (`generated` tells the caller to print it once).
 */
export function stackDefaults(env) {
  const adminToken = env.ADMIN_TOKEN || randomBytes(24).toString('base64url');
  return { bindHost: env.HOST || '127.0.0.1', adminToken, generated: !env.ADMIN_TOKEN };
}

/** URLs as the stack's messages show them: a password or token before the host is never printed. */
export function redactedUrls(urls) {
  return urls
    .split(',')
    .map((url) => url.trim().replace(/\/\/[^@/]*@/, '//***@'))
    .join(',');
}
