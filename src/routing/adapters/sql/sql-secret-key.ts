import { rmSync } from 'node:fs';
import type { Kysely } from 'kysely';
import { keyPieces } from '../../../shared/sql/statement-shapes.js';
import { SEALED_PREFIX, type SecretBox } from '../secrets/secret-box.js';

type Tables = {
  routing_secret_key: { id: number; fingerprint: string; created_at: string };
  routing_secrets: { rule_id: string; secret: string; previous_secret: string | null };
  routing_sealed_values: { rule_id: string; reference: string; sealed: string };
};

/** The process holds another key than the one this database's signing secrets are sealed with. */
export class SecretKeyMismatchError extends Error {
  constructor(detail: string) {
    super(
      `The secret key in use (INTAKE_SECRET_KEY, or the data directory's generated secret-key file when it is unset) ` +
        `is not the key this database's webhook signing secrets are sealed with (${detail}). ` +
        'Every process on this database, every replica of routing and every restart, must use the same key: ' +
        'set INTAKE_SECRET_KEY to it, or give them the same data directory where it was generated. ' +
        "If that key is lost, `intake secret-key adopt` makes this one the database's (secrets that do not open are dropped).",
    );
    this.name = 'SecretKeyMismatchError';
  }
}

/** The generated key file was missing (deleted, or not restored with the database): a new key would seal nothing the database holds. */
export class SecretKeyFileMissingError extends Error {
  constructor(file: string) {
    super(
      `${file} is missing, and this database's webhook signing secrets and destination credentials are sealed with the key it held: ` +
        'restore the file from a backup (or set INTAKE_SECRET_KEY to that key), then start again. ' +
        "Only if the key is lost for good, `intake secret-key adopt` makes a new one the database's (its secrets are dropped).",
    );
    this.name = 'SecretKeyFileMissingError';
  }
}

/**
 * Makes sure this process seals and opens secrets with the database's key, before anything is sent.
 * The first process to start records the fingerprint of its key; a process with another key would
 * otherwise fail every signed delivery, or seal secrets the others cannot open.
 */
export async function verifySecretKey(
  db: Kysely<object>,
  box: SecretBox,
  now: () => Date,
  /** The key file this start generated, if it did: removed again when the database has another key. */
  generatedInto?: string,
): Promise<void> {
  try {
    await verifyKey(db, box, now);
  } catch (error) {
    if (!(error instanceof SecretKeyMismatchError) || generatedInto === undefined) throw error;
    // Left in place, the wrong key would be found at the next start, and the message would no longer say the file was missing.
    rmSync(generatedInto, { force: true });
    throw new SecretKeyFileMissingError(generatedInto);
  }
}

async function verifyKey(db: Kysely<object>, box: SecretBox, now: () => Date): Promise<void> {
  const table = db.withTables<Tables>();
  const fingerprint = box.fingerprint();
  const recorded = async () =>
    (await table.selectFrom('routing_secret_key').select('fingerprint').where('id', '=', 1).executeTakeFirst())?.fingerprint;
  let known = await recorded();
  if (known === undefined) {
    // A database from before the fingerprint: its sealed secrets say which key it has.
    const sealed = await table
      .selectFrom('routing_secrets')
      .select(['rule_id', 'secret'])
      .where('secret', 'like', `${SEALED_PREFIX}%`)
      .limit(1)
      .execute();
    for (const row of sealed) {
      try {
        box.open(row.rule_id, row.secret);
      } catch {
        throw new SecretKeyMismatchError('a stored secret does not open with it');
      }
    }
    // Two processes starting at once: one records its key, the other compares against it.
    await table
      .insertInto('routing_secret_key')
      .values({ id: 1, fingerprint, created_at: now().toISOString() })
      .onConflict((oc) => oc.column('id').doNothing())
      .execute();
    known = await recorded();
  }
  if (known !== fingerprint) throw new SecretKeyMismatchError('its fingerprint differs from the one recorded');
}

/**
 * Makes the process's key the database's, for an operator whose old key is gone: the signing
 * secrets it cannot open are deleted (their rules need a new one: rotate-secret), as are the
 * destination credentials it cannot open (their rules need them given again: PUT), and the key's
 * fingerprint is recorded. Answers the rules whose secret or credentials do not open; unless `drop` is set and
 * some do not, nothing changes (`adopted` false): the operator confirms the loss first.
 */
export async function adoptSecretKey(
  db: Kysely<object>,
  box: SecretBox,
  now: () => Date,
  { drop }: { readonly drop: boolean },
): Promise<{ readonly unreadable: string[]; readonly adopted: boolean }> {
  return db.transaction().execute(async (trx) => {
    const table = trx.withTables<Tables>();
    const unreadable: string[] = [];
    for (const row of await table.selectFrom('routing_secrets').select(['rule_id', 'secret']).execute()) {
      try {
        box.open(row.rule_id, row.secret);
      } catch {
        unreadable.push(row.rule_id);
      }
    }
    const unreadableSecrets = [...unreadable];
    // A rule's destination credentials (header values, broker passwords) are lost the same way.
    const unreadableValues: Array<{ rule_id: string; reference: string }> = [];
    for (const row of await table.selectFrom('routing_sealed_values').select(['rule_id', 'reference', 'sealed']).execute()) {
      try {
        box.open(`${row.rule_id}/${row.reference}`, row.sealed);
      } catch {
        unreadableValues.push(row);
        if (!unreadable.includes(row.rule_id)) unreadable.push(row.rule_id);
      }
    }
    if (unreadable.length > 0 && !drop) return { unreadable, adopted: false };
    for (const piece of keyPieces(trx, unreadableSecrets))
      await table.deleteFrom('routing_secrets').where('rule_id', 'in', piece).execute();
    for (const { rule_id, reference } of unreadableValues)
      await table.deleteFrom('routing_sealed_values').where('rule_id', '=', rule_id).where('reference', '=', reference).execute();
    // A secret a rotation replaced is only honoured for a day: one that does not open is let go without a word.
    for (const row of await table
      .selectFrom('routing_secrets')
      .select(['rule_id', 'previous_secret'])
      .where('previous_secret', 'is not', null)
      .execute()) {
      try {
        box.open(row.rule_id, row.previous_secret ?? '');
      } catch {
        await table.updateTable('routing_secrets').set({ previous_secret: null }).where('rule_id', '=', row.rule_id).execute();
      }
    }
    const fingerprint = box.fingerprint();
    await table
      .insertInto('routing_secret_key')
      .values({ id: 1, fingerprint, created_at: now().toISOString() })
      .onConflict((oc) => oc.column('id').doUpdateSet({ fingerprint, created_at: now().toISOString() }))
      .execute();
    return { unreadable, adopted: true };
  });
}
