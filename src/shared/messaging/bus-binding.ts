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

/** Which stream a relay's checkpoint counts in, and how far it must publish again into it. */
export interface RelayStream {
  /** When the stream was made: a checkpoint in a stream the broker has since lost says nothing of the new one. */
  readonly created: string | undefined;
  /** While the relay publishes its log again into a stream made anew: the position it must reach. */
  readonly republishUntil: number | undefined;
}

export async function loadRelayStream(db: Kysely<object>, relay: string): Promise<RelayStream> {
  const names = [`${relay}.stream_created`, `${relay}.republish_until`];
  const rows = (
    await sql<{ name: string; value: string }>`SELECT name, value FROM bus_binding WHERE name IN (${sql.join(names)})`.execute(db)
  ).rows;
  const value = (name: string) => rows.find((row) => row.name === name)?.value;
  const until = value(`${relay}.republish_until`);
  return { created: value(`${relay}.stream_created`), republishUntil: until === undefined ? undefined : Number(until) };
}

/** Kept across restarts: a relay restarted halfway through publishing its log again knows it still is. */
export async function saveRelayStream(db: Kysely<object>, relay: string, stream: RelayStream): Promise<void> {
  const put = async (name: string, value: string | undefined) => {
    if (value === undefined) await sql`DELETE FROM bus_binding WHERE name = ${name}`.execute(db);
    else
      await sql`INSERT INTO bus_binding (name, value) VALUES (${name}, ${value}) ON CONFLICT (name) DO UPDATE SET value = ${value}`.execute(
        db,
      );
  };
  await put(`${relay}.stream_created`, stream.created);
  await put(`${relay}.republish_until`, stream.republishUntil === undefined ? undefined : String(stream.republishUntil));
}
