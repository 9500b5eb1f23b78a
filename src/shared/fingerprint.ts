import { createHash } from 'node:crypto';

export const sha256 = (text: string): string => createHash('sha256').update(text).digest('base64url');

/**
 * What a request asked for, for telling a retry from another request under the same key: object keys
 * in order of name at every level, so a client that builds the object again (from a hash map) in
 * another order sends the same request.
 */
export const fingerprintOf = (request: unknown): string => sha256(JSON.stringify(request, inOrderOfName) ?? 'undefined');

const inOrderOfName = (_key: string, value: unknown): unknown =>
  typeof value === 'object' && value !== null && !Array.isArray(value)
    ? Object.fromEntries(
        Object.keys(value)
          .sort()
          .map((key) => [key, (value as Record<string, unknown>)[key]]),
      )
    : value;
