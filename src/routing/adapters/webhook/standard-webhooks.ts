import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ValidationError } from '../../../shared/errors.js';

/**
 * Signing per the Standard Webhooks specification (https://www.standardwebhooks.com):
 * `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, the key being the base64 part of a
 * `whsec_` secret. Pure functions, so receivers' verifiers and ours can be checked against each other.
 */
const SECRET_PREFIX = 'whsec_';
const SIGNATURE_VERSION = 'v1';
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** A fresh `whsec_` secret: 24 random bytes, the size the specification recommends as a minimum. */
export function newSigningSecret(): string {
  return SECRET_PREFIX + randomBytes(24).toString('base64');
}

/** The value of the `webhook-signature` header for one message. */
export function signPayload(secret: string, id: string, timestampSeconds: number, body: string): string {
  return `${SIGNATURE_VERSION},${hmac(signingKey(secret), id, timestampSeconds, body)}`;
}

/**
 * The `webhook-signature` header signed with each secret, space-separated as the specification allows:
 * during a rotation a receiver verifies with whichever of the secrets it holds.
 */
export function signWithEach(secrets: readonly string[], id: string, timestampSeconds: number, body: string): string {
  return secrets.map((secret) => signPayload(secret, id, timestampSeconds, body)).join(' ');
}

export interface VerifyOptions {
  /** When given, a timestamp further than `toleranceSeconds` from `now` fails: replayed messages are refused. */
  readonly now?: Date;
  readonly toleranceSeconds?: number;
}

/**
 * True when one of the space-separated signatures in `signatureHeader` is a valid `v1` signature.
 * Compared in constant time; never throws for a malformed header, only for a malformed secret.
 */
export function verifySignature(
  secret: string,
  id: string,
  timestampSeconds: number,
  body: string,
  signatureHeader: string,
  options: VerifyOptions = {},
): boolean {
  if (options.now !== undefined) {
    const ageSeconds = Math.abs(options.now.getTime() / 1000 - timestampSeconds);
    if (!(ageSeconds <= (options.toleranceSeconds ?? 300))) return false;
  }
  const expected = Buffer.from(hmac(signingKey(secret), id, timestampSeconds, body), 'base64');
  return signatureHeader.split(' ').some((candidate) => {
    const [version, signature] = candidate.split(',', 2);
    if (version !== SIGNATURE_VERSION || signature === undefined || !BASE64.test(signature)) return false;
    const actual = Buffer.from(signature, 'base64');
    return actual.length === expected.length && timingSafeEqual(actual, expected);
  });
}

function signingKey(secret: string): Buffer {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : '';
  if (!BASE64.test(encoded)) {
    throw new ValidationError('routing.invalid-signing-secret', `a signing secret is "${SECRET_PREFIX}" followed by a base64 key`);
  }
  return Buffer.from(encoded, 'base64');
}

function hmac(key: Buffer, id: string, timestampSeconds: number, body: string): string {
  return createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`).digest('base64');
}
