import { sql, type Kysely } from 'kysely';

/** What ties a role's schema to one deployment on the bus: its stream and the prefix of its subjects. */
export interface BusBinding {
  readonly stream: string;
  readonly subjectPrefix: string;
}

/** A schema written by the roles of one deployment, opened with another's stream or subjects. */
export class BusBindingMismatch extends Error {}

/**
 * Binds the schema to the deployment on first use, and refuses a later use with another stream or
 * subject prefix. Left to configuration alone, one role started without the deployment's NATS_STREAM
 * read another deployment's events into this schema (and a replay deleted that deployment's consumers).
 * A binding the broker never accepted (the stream belonged to another deployment, and the role was
 * refused) is no deployment's yet: it is rebound, so that the role can start with the settings that
 * its refusal asked for.
 */
export async function bindToBus(db: Kysely<object>, binding: BusBinding, schema: string): Promise<void> {
  const wanted = { stream: binding.stream, subject_prefix: binding.subjectPrefix };
  // Replicas starting together each offer the same rows; the first written stands.
  for (const [name, value] of Object.entries(wanted)) {
    await sql`INSERT INTO bus_binding (name, value) VALUES (${name}, ${value}) ON CONFLICT (name) DO NOTHING`.execute(db);
  }
  const rows = (await sql<{ name: string; value: string }>`SELECT name, value FROM bus_binding`.execute(db)).rows;
  const bound = Object.fromEntries(rows.map((row) => [row.name, row.value]));
  if (bound.stream === wanted.stream && bound.subject_prefix === wanted.subject_prefix) return;
  if (bound.accepted !== 'true') {
    for (const [name, value] of Object.entries(wanted)) {
      await sql`UPDATE bus_binding SET value = ${value} WHERE name = ${name} AND NOT EXISTS (SELECT 1 FROM bus_binding WHERE name = 'accepted')`.execute(
        db,
      );
    }
    return bindToBus(db, binding, schema);
  }
  throw new BusBindingMismatch(
    `schema ${schema} belongs to the deployment on NATS stream "${bound.stream}" with subjects "${bound.subject_prefix}.>", ` +
      `not to stream "${wanted.stream}" with subjects "${wanted.subject_prefix}.>": give this role the NATS_STREAM ` +
      `(and NATS_SUBJECT_PREFIX) of that deployment's other roles, or another DB_SCHEMA_PREFIX`,
  );
}

/** Records that the broker took the bound stream as this deployment's: from now on the binding stands. */
export async function confirmBusBinding(db: Kysely<object>): Promise<void> {
  await sql`INSERT INTO bus_binding (name, value) VALUES ('accepted', 'true') ON CONFLICT (name) DO NOTHING`.execute(db);
}

/**
 * The stream a relay's checkpoint counts in, by when it was made: a checkpoint in a stream the broker
 * has since lost (restarted without its data) says nothing of what the new one holds.
 */
export async function loadRelayStream(db: Kysely<object>, relay: string): Promise<string | undefined> {
  const rows = (await sql<{ value: string }>`SELECT value FROM bus_binding WHERE name = ${`${relay}.stream_created`}`.execute(db)).rows;
  return rows[0]?.value;
}

export async function saveRelayStream(db: Kysely<object>, relay: string, created: string): Promise<void> {
  const name = `${relay}.stream_created`;
  await sql`INSERT INTO bus_binding (name, value) VALUES (${name}, ${created}) ON CONFLICT (name) DO UPDATE SET value = ${created}`.execute(
    db,
  );
}
