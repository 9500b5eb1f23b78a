import { createHmac } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../shared/errors.js';
import { newSigningSecret, signPayload, verifySignature } from './standard-webhooks.js';

// The example published with the Standard Webhooks specification and its reference libraries.
const specVector = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};

describe('signPayload', () => {
  it('matches the specification example', () => {
    expect(signPayload(specVector.secret, specVector.id, specVector.timestamp, specVector.body)).toBe(specVector.signature);
  });

  it('is an HMAC-SHA256 over "<id>.<timestamp>.<body>" keyed by the decoded secret', () => {
    const key = Buffer.from('c2VjcmV0LWtleS1mb3ItdGVzdHM=', 'base64'); // "secret-key-for-tests"
    const body = '{"event":"order.paid","total":12.5,"note":"é ✓"}';
    const expected = createHmac('sha256', key).update(`dlv_1.1700000000.${body}`).digest('base64');

    expect(signPayload('whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM=', 'dlv_1', 1700000000, body)).toBe(`v1,${expected}`);
  });

  it('agrees with the reference implementation', () => {
    const secret = newSigningSecret();
    const at = new Date('2025-03-01T10:00:00Z');

    expect(signPayload(secret, 'dlv_2', at.getTime() / 1000, '{"a":1}')).toBe(new Webhook(secret).sign('dlv_2', at, '{"a":1}'));
  });

  it('refuses a secret that is not whsec_ and base64', () => {
    expect(() => signPayload('not-a-secret', 'id', 1, '{}')).toThrow(ValidationError);
    expect(() => signPayload('whsec_', 'id', 1, '{}')).toThrow(ValidationError);
    expect(() => signPayload('whsec_%%%', 'id', 1, '{}')).toThrow(ValidationError);
  });
});

describe('verifySignature', () => {
  const { secret, id, timestamp, body, signature } = specVector;

  it('accepts a valid signature, also among others in the header', () => {
    expect(verifySignature(secret, id, timestamp, body, signature)).toBe(true);
    expect(verifySignature(secret, id, timestamp, body, `v1,Ym9ndXM= ${signature}`)).toBe(true);
  });

  it('refuses any change to the id, timestamp, body or secret', () => {
    expect(verifySignature(secret, 'msg_other', timestamp, body, signature)).toBe(false);
    expect(verifySignature(secret, id, timestamp + 1, body, signature)).toBe(false);
    expect(verifySignature(secret, id, timestamp, '{"test": 2432232315}', signature)).toBe(false);
    expect(verifySignature(newSigningSecret(), id, timestamp, body, signature)).toBe(false);
  });

  it('refuses malformed headers and other versions', () => {
    expect(verifySignature(secret, id, timestamp, body, '')).toBe(false);
    expect(verifySignature(secret, id, timestamp, body, signature.replace('v1,', 'v2,'))).toBe(false);
    expect(verifySignature(secret, id, timestamp, body, 'v1,')).toBe(false);
    expect(verifySignature(secret, id, timestamp, body, 'v1,***')).toBe(false);
  });

  it('refuses a timestamp outside the tolerance when given the current time', () => {
    const sentAt = new Date(timestamp * 1000);
    expect(verifySignature(secret, id, timestamp, body, signature, { now: new Date(sentAt.getTime() + 299_000) })).toBe(true);
    expect(verifySignature(secret, id, timestamp, body, signature, { now: new Date(sentAt.getTime() + 301_000) })).toBe(false);
    expect(verifySignature(secret, id, timestamp, body, signature, { now: new Date(sentAt.getTime() - 301_000) })).toBe(false);
    expect(
      verifySignature(secret, id, timestamp, body, signature, { now: new Date(sentAt.getTime() + 20_000), toleranceSeconds: 10 }),
    ).toBe(false);
  });

  it('accepts what the reference implementation signs', () => {
    const secret = newSigningSecret();
    const at = new Date('2025-03-01T10:00:00Z');
    const referenceSignature = new Webhook(secret).sign('dlv_3', at, '{"b":2}');

    expect(verifySignature(secret, 'dlv_3', at.getTime() / 1000, '{"b":2}', referenceSignature)).toBe(true);
  });
});

describe('newSigningSecret', () => {
  it('is whsec_ and 24 random bytes in base64', () => {
    const secret = newSigningSecret();

    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    expect(Buffer.from(secret.slice('whsec_'.length), 'base64')).toHaveLength(24);
    expect(newSigningSecret()).not.toBe(secret);
  });
});
