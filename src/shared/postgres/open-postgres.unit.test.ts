import { describe, expect, it } from 'vitest';
import { openPostgres, withoutPassword } from './open-postgres.js';

describe('PostgreSQL connection errors', () => {
  it('leave the password out of a URL', () => {
    expect(withoutPassword('postgres://intake:s3cret@db.example:5432/intake')).toBe('postgres://intake:***@db.example:5432/intake');
    expect(withoutPassword('postgres://db.example/intake')).toBe('postgres://db.example/intake');
    // The driver takes a password from the query too.
    expect(withoutPassword('postgres://intake@db.example/x?password=sekret&sslmode=require')).toBe(
      'postgres://intake@db.example/x?password=***&sslmode=require',
    );
  });

  it('name the server they could not reach, without its password', async () => {
    const failure = openPostgres({ url: 'postgres://intake:s3cret@127.0.0.1:1/intake', schema: 'ingestion' });
    await expect(failure).rejects.toThrow(
      /^cannot prepare PostgreSQL at postgres:\/\/intake:\*\*\*@127\.0\.0\.1:1\/intake \(schema ingestion\): /,
    );
    await expect(failure).rejects.not.toThrow(/s3cret/);
  });

  it('say why a schema name is refused: its characters, or its length past 63', async () => {
    const url = 'postgres://127.0.0.1:1/intake';
    await expect(openPostgres({ url, schema: `probe_${'z'.repeat(60)}_intake` })).rejects.toThrow(
      /more than PostgreSQL's 63 \(shorten DB_SCHEMA_PREFIX\)/,
    );
    await expect(openPostgres({ url, schema: 'Bad-Name' })).rejects.toThrow(/use lower-case letters, digits and _/);
  });
});
