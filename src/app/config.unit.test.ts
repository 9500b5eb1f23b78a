import { describe, expect, it } from 'vitest';
import { CONTEXTS } from './catalog.js';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, loadDotEnv, MIN_STORAGE_THREAD_HEAP_MB } from './config.js';
import { storageBudgetOf } from './embedded.js';
import { OPTIONAL_CONTEXTS } from './optional-contexts.js';

describe('configuration', () => {
  it('lets INTAKE_DISABLE name exactly the optional contexts of the catalog', () => {
    const optional = CONTEXTS.filter((context) => context.optional).map((context) => context.name);
    expect([...optional].sort()).toEqual([...OPTIONAL_CONTEXTS].sort());
    expect(loadConfig({ INTAKE_DISABLE: optional.join(',') }).disabledContexts).toEqual(optional);
    expect(() => loadConfig({ INTAKE_DISABLE: 'ingestion' })).toThrow(ConfigError);
  });

  it("refuses the contexts' own malformed settings at once, naming the variable", () => {
    const refused = (env: NodeJS.ProcessEnv) => {
      try {
        loadConfig(env);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return (error as Error).message;
      }
      throw new Error(`${JSON.stringify(env)} was taken`);
    };
    expect(refused({ WEBHOOK_ALLOWED_HOSTS: 'hooks.internal, localhost:8080' })).toBe(
      'WEBHOOK_ALLOWED_HOSTS: "localhost:8080" is neither a host name, an IP address nor a CIDR',
    );
    expect(refused({ WEBHOOK_RETRY_SCHEDULE: '5,soon' })).toMatch(/^WEBHOOK_RETRY_SCHEDULE must be/);
    expect(refused({ ROUTING_BREAKER_THRESHOLD: '0' })).toMatch(/^ROUTING_BREAKER_THRESHOLD must be/);
    expect(refused({ ATTRIBUTION_WEIGHTS: 'click=many' })).toMatch(/^ATTRIBUTION_WEIGHTS/);
    // A score of such weights overflows to Infinity, which JSON writes as null.
    expect(refused({ ATTRIBUTION_WEIGHTS: 'click=1e308' })).toMatch(/^ATTRIBUTION_WEIGHTS.*click must be a number from 0 to 1,000,000/);
  });

  it('takes an empty HOST, DATA_DIR or DATABASE_URL for unset, as every other variable, and checks the secret key and schema prefix before anything opens', () => {
    const config = loadConfig({ HOST: '', DATA_DIR: '', DATABASE_URL: 'sqlite:/tmp/intake-config/db/intake.db' });
    expect(config).toMatchObject({ host: '0.0.0.0', dataDir: '/tmp/intake-config/db' });
    // A compose file's `DATABASE_URL: ${DATABASE_URL:-}`: the default database, not a refusal.
    expect(loadConfig({ DATABASE_URL: '' }).dataDir).toBe(join(process.cwd(), 'data'));
    expect(loadConfig({ DATA_DIR: 'state' }).dataDir).toBe(join(process.cwd(), 'state'));
    expect(() => loadConfig({ INTAKE_SECRET_KEY: 'short' })).toThrow(new ConfigError('INTAKE_SECRET_KEY must be at least 16 characters'));
    expect(loadConfig({ INTAKE_SECRET_KEY: '' }).secretKey).toBeUndefined();
    expect(() => loadConfig({ DB_SCHEMA_PREFIX: 'bad"x' })).toThrow(/^DB_SCHEMA_PREFIX must be lower-case letters/);
    expect(loadConfig({ DB_SCHEMA_PREFIX: 'team_a_' }).schemaPrefix).toBe('team_a_');
  });

  it('reads words of a list whatever their case', () => {
    expect(loadConfig({ LOG_LEVEL: 'DEBUG', DURABILITY: 'Process-Crash' })).toMatchObject({
      logLevel: 'debug',
      durability: 'process-crash',
    });
    expect(() => loadConfig({ LOG_LEVEL: 'loud' })).toThrow(
      'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent (got "loud")',
    );
  });

  it('defaults to the embedded mode on ./data/intake.db, port 8000', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 8000,
      host: '0.0.0.0',
      databaseUrl: 'sqlite:./data/intake.db',
      roles: 'all',
      durability: 'power-loss',
      bodyLimitBytes: 1048576,
      maxJsonDepth: 64,
      routingConcurrency: 32,
    });
    expect(config.dataDir).toMatch(/data$/);
  });

  it('gives a single distributed role its own default port', () => {
    const config = loadConfig({ ROLE: 'query', DATABASE_URL: 'postgres://u@h/db', NATS_URL: 'nats://h:4222' });
    expect(config).toMatchObject({ roles: ['query'], port: 5002 });
    expect(loadConfig({ ROLE: 'ingestion,query', DATABASE_URL: 'postgres://u@h/db', NATS_URL: 'nats://h' }).port).toBe(8000);
  });

  it.each([
    [{ PORT: 'eighty' }, /PORT must be an integer/],
    [{ DATABASE_URL: 'mysql://x' }, /sqlite: or postgres/],
    [{ ROLE: 'query', DATABASE_URL: 'postgres://u@h/db' }, /needs a postgres/],
    [{ ROLE: 'query' }, /needs a postgres/],
    [{ ROLE: 'querry', DATABASE_URL: 'postgres://u@h/db', NATS_URL: 'nats://h' }, /unknown: querry/],
    [
      { ROLE: 'query', DATABASE_URL: 'postgres://u@h/db', NATS_URL: 'nats://127.0.0.1:99999' },
      /NATS_URL names a server with no valid address/,
    ],
    [{ ROLE: 'query', DATABASE_URL: 'postgres://u@h/db', NATS_URL: 'nats://h:4222, h2:70000' }, /no valid address: "h2:70000"/],
    [{ DURABILITY: 'sometimes' }, /DURABILITY must be one of/],
    [{ MAX_JSON_DEPTH: '1' }, /MAX_JSON_DEPTH must be an integer between 2 and 1000/],
    [{ ROUTING_CONCURRENCY: '0' }, /ROUTING_CONCURRENCY must be an integer between 1 and 1000/],
    [{ ROUTING_CONCURRENCY: '8.5' }, /ROUTING_CONCURRENCY must be an integer/],
    [{ QUEUE_BROKERS: 'orders=http://x' }, /QUEUE_BROKERS entries are name=url/],
    [{ INTAKE_DISABLE: 'ingestion' }, /INTAKE_DISABLE may name/],
    [{ INTAKE_DISABLE: 'validation' }, /leaves processing waiting for the verdicts validation gives/],
  ])('refuses %j', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('runs PostgreSQL without NATS as one embedded process, and with NATS as the distributed mode', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u@h/db' })).toMatchObject({ distributed: false, roles: 'all', storageThread: false });
    expect(loadConfig({ DATABASE_URL: 'postgres://u@h/db', NATS_URL: 'nats://h' })).toMatchObject({ distributed: true });
    expect(loadConfig({})).toMatchObject({ distributed: false, storageThread: true });
    expect(loadConfig({ STORAGE_THREAD: 'off' }).storageThread).toBe(false);
    expect(loadConfig({}).storageThreadHeapMb).toBe(1024);
    expect(() => loadConfig({ STORAGE_THREAD_HEAP_MB: '16' })).toThrow(ConfigError);
    // 128 MB passed and ran out of memory under ordinary batches.
    expect(() => loadConfig({ STORAGE_THREAD_HEAP_MB: '128' })).toThrow(/STORAGE_THREAD_HEAP_MB/);
    expect(loadConfig({ STORAGE_THREAD_HEAP_MB: String(MIN_STORAGE_THREAD_HEAP_MB) }).storageThreadHeapMb).toBe(MIN_STORAGE_THREAD_HEAP_MB);
    expect(loadConfig({}).consumerCommitIntervalMs).toBe(0);
    expect(loadConfig({ CONSUMER_COMMIT_INTERVAL_MS: '50' }).consumerCommitIntervalMs).toBe(50);
    expect(() => loadConfig({ CONSUMER_COMMIT_INTERVAL_MS: '5000' })).toThrow(ConfigError);
  });

  it('derives the subject prefix from the stream, so deployments sharing a NATS stay apart', () => {
    const pg = { DATABASE_URL: 'postgres://u@h/db', NATS_URL: 'nats://h' };
    expect(loadConfig(pg)).toMatchObject({ natsStream: 'INTAKE', natsSubjectPrefix: 'intake' });
    expect(loadConfig({ ...pg, NATS_STREAM: 'STAGING' })).toMatchObject({ natsStream: 'STAGING', natsSubjectPrefix: 'staging' });
    expect(loadConfig({ ...pg, NATS_STREAM: 'B', NATS_SUBJECT_PREFIX: 'acme.b' }).natsSubjectPrefix).toBe('acme.b');
    expect(() => loadConfig({ ...pg, NATS_SUBJECT_PREFIX: 'intake.>' })).toThrow(/NATS_SUBJECT_PREFIX must be/);
    expect(() => loadConfig({ ...pg, NATS_STREAM: 'a.b' })).toThrow(/NATS_STREAM may hold/);
  });

  it('checks broker URLs and integers at start-up, rather than at their first use', () => {
    expect(loadConfig({ NATS_URL: 'nats://a:4222, nats://b:4222' }).natsUrl).toBe('nats://a:4222, nats://b:4222');
    expect(loadConfig({ NATS_URL: 'nats:4222' }).natsUrl).toBe('nats:4222');
    expect(loadConfig({ RABBITMQ_URL: 'amqp://guest:guest@127.0.0.1:5672', REDIS_URL: 'redis://127.0.0.1:6379' }).redisUrl).toBe(
      'redis://127.0.0.1:6379',
    );
    expect(() => loadConfig({ NATS_URL: 'notaurl' })).toThrow(/NATS_URL must be a URL such as nats:\/\/host:4222/);
    expect(() => loadConfig({ RABBITMQ_URL: 'notaurl' })).toThrow(/RABBITMQ_URL must be a URL/);
    expect(() => loadConfig({ REDIS_URL: 'http://cache:6379' })).toThrow(/REDIS_URL must be a URL/);
    // Its password is not repeated in the message.
    expect(() => loadConfig({ RABBITMQ_URL: 'amqp//user:secret@host' })).toThrow(/got "amqp\/\/\*\*\*@host"/);
    for (const port of ['0x4C9A', '1e3', '80.0']) expect(() => loadConfig({ PORT: port })).toThrow(/PORT must be an integer/);
    expect(loadConfig({ PORT: '8080' }).port).toBe(8080);
  });

  it('keeps succeeded deliveries 30 days by default, for ever with 0, and refuses what is not a number of days', () => {
    expect(loadConfig({}).deliveryRetentionDays).toBe(30);
    expect(loadConfig({ DELIVERY_RETENTION_DAYS: '0' }).deliveryRetentionDays).toBe(0);
    expect(loadConfig({ DELIVERY_RETENTION_DAYS: '7' }).deliveryRetentionDays).toBe(7);
    for (const wrong of ['-1', '1.5', 'week', '3651'])
      expect(() => loadConfig({ DELIVERY_RETENTION_DAYS: wrong }), wrong).toThrow(
        `DELIVERY_RETENTION_DAYS must be an integer between 0 and 3650 (got "${wrong}")`,
      );
  });

  it('refuses a token no Authorization header could carry, and a password given in the URL is not repeated', () => {
    expect(() => loadConfig({ ADMIN_TOKEN: 'tok en#x' })).toThrow(ConfigError);
    expect(() => loadConfig({ METRICS_TOKEN: 'tab\there' })).toThrow(/METRICS_TOKEN must be printable ASCII without spaces/);
    expect(loadConfig({ ADMIN_TOKEN: 'a-Token_of/any:kind' }).adminToken).toBe('a-Token_of/any:kind');
    expect(() => loadConfig({ DATABASE_URL: 'mysql://u@h/x?password=sekret' })).toThrow(/password=\*\*\*/);
  });

  it('refuses a sqlite URL that names no file', () => {
    for (const url of ['sqlite:', 'sqlite://']) expect(() => loadConfig({ DATABASE_URL: url })).toThrow(/DATABASE_URL names no file/);
  });

  it('takes TRUST_PROXY as true (one proxy), false, a number of proxies or their addresses, and refuses anything else', () => {
    expect(loadConfig({}).trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: 'false' }).trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: 'true' }).trustProxy).toBe(1);
    expect(loadConfig({ TRUST_PROXY: '2' }).trustProxy).toBe(2);
    expect(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 192.168.1.7,loopback,fd00::/8' }).trustProxy).toBe(
      '10.0.0.0/8,192.168.1.7,loopback,fd00::/8',
    );
    for (const value of ['yes', 'TRUE', '0', '17', '10.0.0.0/33', '10.0.0/8', 'proxy.internal', '10.0.0.1,', '::1/129'])
      expect(() => loadConfig({ TRUST_PROXY: value }), value).toThrow(/TRUST_PROXY must be true \(one proxy\), false/);
  });

  it('takes PUBLIC_URL as an http(s) URL, and refuses one with credentials, a query or another scheme', () => {
    expect(loadConfig({}).publicUrl).toBeUndefined();
    expect(loadConfig({ PUBLIC_URL: 'https://intake.example.com/base/' }).publicUrl?.href).toBe('https://intake.example.com/base/');
    for (const wrong of ['intake.example.com', 'ftp://intake.example.com', 'https://u:p@intake.example.com', 'https://x.example/?a=1'])
      expect(() => loadConfig({ PUBLIC_URL: wrong }), wrong).toThrow(/^PUBLIC_URL must be an http\(s\) URL/);
  });

  it('reads the contexts to leave out', () => {
    expect(loadConfig({ INTAKE_DISABLE: 'statistics, attribution' }).disabledContexts).toEqual(['statistics', 'attribution']);
  });

  it('reads named queue brokers, NATS server lists included', () => {
    expect(loadConfig({ QUEUE_BROKERS: 'orders=redis://cache:6379, events=nats://a:4222,nats://b:4222' }).queueBrokers).toEqual({
      orders: 'redis://cache:6379',
      events: 'nats://a:4222,nats://b:4222',
    });
    expect(loadConfig({}).queueBrokers).toEqual({});
  });
});

describe('the .env file', () => {
  it('is read when it is a file, and refused with its place and the reason when it cannot be', () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-env-'));
    try {
      const file = join(dir, 'settings.env');
      writeFileSync(file, 'INTAKE_TEST_DOTENV=from-file\n');
      loadDotEnv(file);
      expect(process.env.INTAKE_TEST_DOTENV).toBe('from-file');
      const folder = join(dir, '.env');
      mkdirSync(folder);
      expect(() => loadDotEnv(folder)).toThrow(ConfigError);
      expect(() => loadDotEnv(folder)).toThrow(`cannot read ${folder}: it is a directory`);
      loadDotEnv(join(dir, 'absent.env'));

      // A line Node would skip without a word is refused, by its number only (it may hold a secret).
      const typo = join(dir, 'typo.env');
      writeFileSync(typo, '# settings\nHOST=127.0.0.1\n\nPORT 41004\n');
      expect(() => loadDotEnv(typo)).toThrow(`${typo} line 4 is not a NAME=value line (nor a # comment): correct or remove it`);
      const fine = join(dir, 'fine.env');
      writeFileSync(
        fine,
        'export INTAKE_TEST_DOTENV_A=1\nINTAKE_TEST_DOTENV_B="two\nlines"\n  # indented comment\nINTAKE_TEST_DOTENV_C=\n',
      );
      loadDotEnv(fine);
      expect(process.env.INTAKE_TEST_DOTENV_B).toBe('two\nlines');

      // Saved by an editor with a byte order mark: the first setting is read all the same.
      const marked = join(dir, 'marked.env');
      writeFileSync(marked, '\uFEFFINTAKE_TEST_DOTENV=marked\n');
      delete process.env.INTAKE_TEST_DOTENV;
      loadDotEnv(marked);
      expect(process.env.INTAKE_TEST_DOTENV).toBe('marked');
      // A quote never closed would take the rest of the file for a value, and hide a bad line in it.
      const unclosed = join(dir, 'unclosed.env');
      writeFileSync(unclosed, 'INTAKE_TEST_DOTENV_A="abc\nPORT 41265\n');
      expect(() => loadDotEnv(unclosed)).toThrow(`${unclosed} line 1 opens a quoted value (") that is never closed`);
      // Node would cut an unquoted value at its #: refused, the value not echoed; quoted, or a comment after a space, it is read.
      const hashed = join(dir, 'hashed.env');
      writeFileSync(hashed, 'INTAKE_TEST_DOTENV_A=1 # a comment\nINTAKE_TEST_DOTENV_TOKEN=abc#def\n');
      expect(() => loadDotEnv(hashed)).toThrow(
        `${hashed} line 2 has a # in an unquoted value, where the value would be cut short; put the value in quotes`,
      );
      expect(() => loadDotEnv(hashed)).not.toThrow(/abc/);
      writeFileSync(hashed, 'INTAKE_TEST_DOTENV_A=1 # a comment\nINTAKE_TEST_DOTENV_TOKEN="abc#def"\nINTAKE_TEST_DOTENV_E= # none yet\n');
      delete process.env.INTAKE_TEST_DOTENV_TOKEN;
      loadDotEnv(hashed);
      expect(process.env.INTAKE_TEST_DOTENV_TOKEN).toBe('abc#def');
      expect(process.env.INTAKE_TEST_DOTENV_E).toBe('');
      delete process.env.INTAKE_TEST_DOTENV_TOKEN;
      delete process.env.INTAKE_TEST_DOTENV_E;
      // Node would drop what follows a closing quote (the token would be `abc`): refused, not echoed; a comment may follow.
      const trailing = join(dir, 'trailing.env');
      writeFileSync(trailing, 'INTAKE_TEST_DOTENV_A="1" # a comment\nINTAKE_TEST_DOTENV_TOKEN="abc"def\n');
      const dropped = `${trailing} line 2 has text after the closing quote of its value, which would be dropped; put it inside the quotes`;
      expect(() => loadDotEnv(trailing)).toThrow(dropped);
      expect(() => loadDotEnv(trailing)).not.toThrow(/def/);
      writeFileSync(trailing, "INTAKE_TEST_DOTENV_A='two\nlines'x\n");
      expect(() => loadDotEnv(trailing)).toThrow(`${trailing} line 2 has text after the closing quote`);
      writeFileSync(trailing, "INTAKE_TEST_DOTENV_TOKEN='abc' # the token\nINTAKE_TEST_DOTENV_B=`b`\n");
      loadDotEnv(trailing);
      expect(process.env.INTAKE_TEST_DOTENV_TOKEN).toBe('abc');
      delete process.env.INTAKE_TEST_DOTENV_TOKEN;
      // What the environment sets wins over the file.
      process.env.INTAKE_TEST_DOTENV_C = 'from-env';
      writeFileSync(marked, 'INTAKE_TEST_DOTENV_C=from-file\n');
      loadDotEnv(marked);
      expect(process.env.INTAKE_TEST_DOTENV_C).toBe('from-env');
    } finally {
      delete process.env.INTAKE_TEST_DOTENV;
      for (const name of ['A', 'B', 'C']) delete process.env[`INTAKE_TEST_DOTENV_${name}`];
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('what the HTTP thread may hand the storage thread', () => {
  it('is MAX_QUEUED_APPENDS calls, and text in proportion to the storage thread’s heap', () => {
    const budget = (heapMb: number) => storageBudgetOf({ maxQueuedAppends: 500, storageThreadHeapMb: heapMb });
    expect(budget(1024)).toEqual({
      maxCalls: 500,
      maxChars: 64 * 1024 * 1024,
      // Past it: what readiness and metrics ask of the storage thread.
      reports: ['subscriptions.status', 'storage.metrics', 'storage.health'],
    });
    expect(budget(256).maxChars).toBe(16 * 1024 * 1024);
    expect(budget(8192).maxChars).toBe(64 * 1024 * 1024);
  });
});
