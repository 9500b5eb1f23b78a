import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../app/config.js';
import { testPostgresUrl } from '../shared/postgres/temporary-schema.js';
import { outputFor } from './output.js';
import { replay } from './replay.js';

const natsUrl = process.env.TEST_NATS_URL || undefined;
const runnable = Boolean(testPostgresUrl && natsUrl);
if (!runnable) console.warn('skipping the distributed replay command: it needs TEST_POSTGRES_URL and TEST_NATS_URL');

describe.skipIf(!runnable)('ROLE=<role> intake replay', () => {
  it('says there is nothing to replay for roles that keep no views, instead of "rebuilt  in 200 ms"', async () => {
    const suffix = randomBytes(5).toString('hex');
    const prefix = `t${suffix}_`;
    const stream = `INTAKE_TEST_${suffix}`;
    const config = loadConfig({
      DATABASE_URL: testPostgresUrl,
      NATS_URL: natsUrl,
      ROLE: 'validation,tracking',
      DB_SCHEMA_PREFIX: prefix,
      NATS_STREAM: stream,
    });
    const human: string[] = [];
    const json: string[] = [];
    try {
      await replay(
        config,
        pino({ level: 'silent' }),
        outputFor(false, (text) => human.push(text)),
        undefined,
      );
      await replay(
        config,
        pino({ level: 'silent' }),
        outputFor(true, (text) => json.push(text)),
        undefined,
      );
      expect(human).toEqual(['nothing to replay: ROLE=validation,tracking keeps no views to rebuild\n']);
      expect(JSON.parse(json[0] ?? '{}')).toEqual({ replayed: [], ms: 0 });
    } finally {
      const client = new pg.Client({ connectionString: testPostgresUrl });
      await client.connect();
      for (const role of ['validation', 'tracking']) await client.query(`DROP SCHEMA IF EXISTS "${prefix}${role}" CASCADE`);
      await client.end();
      const admin = await connect({ servers: natsUrl });
      await (await jetstreamManager(admin)).streams.delete(stream).catch(() => false);
      await admin.close();
    }
  });
});
