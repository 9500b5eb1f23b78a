import { randomBytes } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { secretBox } from '../secrets/secret-box.js';
import { routingTestDatabases } from './routing-test-databases.js';
import { sqlSecretVault } from './sql-rules.js';
import { adoptSecretKey } from './sql-secret-key.js';

const backends = routingTestDatabases;

const REF = `sealed_${'c'.repeat(32)}`;

describe.each(backends)('the secret vault on $name', ({ available, open }) => {
  let opened: { db: Kysely<object>; close(): Promise<void> } | undefined;
  afterEach(async () => {
    await opened?.close();
    opened = undefined;
  });

  it.skipIf(!available)('keeps a rotated secret signing until its time is up, and forgets it at the next plain change', async () => {
    opened = await open();
    const vault = sqlSecretVault(secretBox(randomBytes(32)))(opened.db);
    await vault.set('r1', 'whsec_first');
    expect(await vault.signingSecrets('r1', '2026-12-01T00:00:00.000Z')).toEqual(['whsec_first']);
    await vault.set('r1', 'whsec_second', '2026-12-02T00:00:00.000Z');
    expect(await vault.signingSecrets('r1', '2026-12-01T23:59:59.999Z')).toEqual(['whsec_second', 'whsec_first']);
    expect(await vault.signingSecrets('r1', '2026-12-02T00:00:00.000Z')).toEqual(['whsec_second']);
    const rows = await sql<{ previous_secret: string }>`SELECT previous_secret FROM routing_secrets`.execute(opened.db);
    expect(rows.rows[0]?.previous_secret).not.toContain('whsec_first');
    await vault.set('r1', 'whsec_third');
    expect(await vault.signingSecrets('r1', '2026-12-01T00:00:00.000Z')).toEqual(['whsec_third']);
  });

  it.skipIf(!available)('seals credentials bound to their rule and reference', async () => {
    opened = await open();
    const vault = sqlSecretVault(secretBox(randomBytes(32)))(opened.db);
    await vault.sealValues('r1', { [REF]: 'Bearer SUPERSECRET123' });
    expect(await vault.openValues('r1', [REF])).toEqual(new Map([[REF, 'Bearer SUPERSECRET123']]));
    const stored = await sql<{ sealed: string }>`SELECT sealed FROM routing_sealed_values`.execute(opened.db);
    expect(stored.rows[0]?.sealed).not.toContain('SUPERSECRET123');
    // Copied to another rule, it does not open there.
    await sql`INSERT INTO routing_sealed_values (rule_id, reference, sealed) VALUES ('r2', ${REF}, ${stored.rows[0]?.sealed})`.execute(
      opened.db,
    );
    expect(await vault.openValues('r2', [REF])).toEqual(new Map());
  });

  it.skipIf(!available)('lets an adopted key drop the credentials it cannot open, naming their rules', async () => {
    opened = await open();
    const lost = secretBox(randomBytes(32));
    const kept = secretBox(randomBytes(32));
    await sqlSecretVault(kept)(opened.db).set('r1', 'whsec_kept');
    await sqlSecretVault(lost)(opened.db).sealValues('r1', { [REF]: 'Bearer lost' });
    const now = () => new Date('2026-12-02T12:00:00.000Z');
    expect(await adoptSecretKey(opened.db, kept, now, { drop: false })).toEqual({ unreadable: ['r1'], adopted: false });
    expect(await adoptSecretKey(opened.db, kept, now, { drop: true })).toEqual({ unreadable: ['r1'], adopted: true });
    // Its signing secret opened: it stays.
    expect(await sqlSecretVault(kept)(opened.db).get('r1')).toBe('whsec_kept');
    const left = await sql<{ n: number }>`SELECT count(*) AS n FROM routing_sealed_values`.execute(opened.db);
    expect(Number(left.rows[0]?.n)).toBe(0);
  });
});
