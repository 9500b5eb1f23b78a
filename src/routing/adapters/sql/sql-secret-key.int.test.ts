import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { secretBox } from '../secrets/secret-box.js';
import { routingTestDatabases } from './routing-test-databases.js';
import { sqlSecretVault } from './sql-rules.js';
import { adoptSecretKey, SecretKeyMismatchError, verifySecretKey } from './sql-secret-key.js';

const backends = routingTestDatabases;

const now = () => new Date('2026-12-02T12:00:00.000Z');

describe.each(backends)('the secret key check on $name', ({ available, open }) => {
  let opened: { db: Kysely<object>; close(): Promise<void> } | undefined;
  afterEach(async () => {
    await opened?.close();
    opened = undefined;
  });

  it.skipIf(!available)('records the first key, accepts it again and refuses another', async () => {
    opened = await open();
    const key = secretBox(randomBytes(32));
    await verifySecretKey(opened.db, key, now);
    await verifySecretKey(opened.db, key, now);
    await expect(verifySecretKey(opened.db, secretBox(randomBytes(32)), now)).rejects.toBeInstanceOf(SecretKeyMismatchError);
  });

  it.skipIf(!available)('judges a database sealed before fingerprints by a secret sealed there', async () => {
    opened = await open();
    const sealing = secretBox(randomBytes(32));
    await sqlSecretVault(sealing)(opened.db).set('rule-1', 'whsec_one');
    await expect(verifySecretKey(opened.db, secretBox(randomBytes(32)), now)).rejects.toThrow(/a stored secret does not open with it/);
    await verifySecretKey(opened.db, sealing, now);
    expect(await sqlSecretVault(sealing)(opened.db).get('rule-1')).toBe('whsec_one');
  });

  it.skipIf(!available)('adopts a new key when the old one is lost: what does not open is dropped, the rest kept', async () => {
    opened = await open();
    const lost = secretBox(randomBytes(32));
    const kept = secretBox(randomBytes(32));
    await verifySecretKey(opened.db, lost, now);
    await sqlSecretVault(lost)(opened.db).set('rule-old', 'whsec_old');
    await sqlSecretVault(kept)(opened.db).set('rule-new', 'whsec_new');
    await expect(verifySecretKey(opened.db, kept, now)).rejects.toBeInstanceOf(SecretKeyMismatchError);

    // Unconfirmed, the loss is only reported: nothing changes.
    expect(await adoptSecretKey(opened.db, kept, now, { drop: false })).toEqual({ unreadable: ['rule-old'], adopted: false });
    await expect(verifySecretKey(opened.db, kept, now)).rejects.toBeInstanceOf(SecretKeyMismatchError);
    expect(await sqlSecretVault(lost)(opened.db).get('rule-old')).toBe('whsec_old');
    expect(await adoptSecretKey(opened.db, kept, now, { drop: true })).toEqual({ unreadable: ['rule-old'], adopted: true });
    await verifySecretKey(opened.db, kept, now);
    expect(await sqlSecretVault(kept)(opened.db).get('rule-old')).toBeUndefined();
    expect(await sqlSecretVault(kept)(opened.db).get('rule-new')).toBe('whsec_new');
  });
});
