import { hash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Secrets are kept only as SHA-256 digests: they are long random tokens, so a slow KDF adds nothing. */
export function digestOf(secret: string): Buffer {
  // The one-shot form: about half the cost of a Hash object, and every request pays it.
  return hash('sha256', secret, 'buffer');
}

/** Constant-time comparison of a presented secret against a stored digest. */
export function secretMatches(presented: string, digest: Buffer): boolean {
  const candidate = digestOf(presented);
  return candidate.length === digest.length && timingSafeEqual(candidate, digest);
}

export function newSecret(prefix: string): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}
