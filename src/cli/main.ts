import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, loadDotEnv } from '../app/config.js';
import { createLogger } from '../app/logger.js';
import { version } from '../app/version.js';
import { runImport } from './import.js';
import { migrate } from './migrate.js';
import { replay } from './replay.js';
import { serve } from './serve.js';

const HELP = `intake ${version} — durable JSON ingestion

Usage: intake <command> [options]

Commands:
  serve      Run the HTTP service (the default)
               --role ROLES        distributed mode: which services (same as ROLE)
  migrate    Apply pending database migrations and exit
  replay     Rebuild views from the event store and exit (distributed: the views of
             the roles in ROLE, from the broker's stream)
               --subscriber NAME   only this view (default: every view)
  import     Send a file of messages to a running Intake (NDJSON or CSV, - for stdin, .gz)
               FILE                Segment-style messages (to /v1/import) or partner items
               --url URL           the server (INTAKE_URL, default http://127.0.0.1:PORT)
               --write-key KEY     for messages (INTAKE_WRITE_KEY)
               --token TOKEN       for partner items: admin token or the app's write key
               --format ndjson|csv --batch-size N (100) --rejects PATH
  help       Show this help

Configuration comes from the environment and an optional .env file:
  PORT (8000), HOST (0.0.0.0), DATABASE_URL (sqlite:./data/intake.db or postgres://…),
  ROLE (all), NATS_URL, DB_SCHEMA_PREFIX, ADMIN_TOKEN,
  LOG_LEVEL (info), BODY_LIMIT (1048576 bytes), DURABILITY (power-loss | process-crash),
  MAX_QUEUED_APPENDS (10000)
`;

export async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: false,
    options: {
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
      subscriber: { type: 'string' },
      role: { type: 'string' },
      url: { type: 'string' },
      'write-key': { type: 'string' },
      token: { type: 'string' },
      format: { type: 'string' },
      'batch-size': { type: 'string' },
      rejects: { type: 'string' },
    },
  });
  const command = positionals[0] ?? 'serve';
  if (values.version) {
    process.stdout.write(`${version}\n`);
    return 0;
  }
  if (values.help || command === 'help') {
    process.stdout.write(HELP);
    return 0;
  }

  loadDotEnv();
  // Import talks to a running server over HTTP: it needs none of the server's configuration.
  if (command === 'import') {
    const text = (name: string) => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
    return runImport({
      file: positionals[1],
      url: text('url'),
      writeKey: text('write-key'),
      token: text('token'),
      format: text('format'),
      batchSize: text('batch-size'),
      rejects: text('rejects'),
    });
  }
  if (typeof values.role === 'string') process.env.ROLE = values.role;
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  switch (command) {
    case 'serve':
      await serve(config, logger);
      return 0;
    case 'migrate':
      await migrate(config, logger);
      return 0;
    case 'replay':
      await replay(config, logger, typeof values.subscriber === 'string' ? values.subscriber : undefined);
      return 0;
    default:
      process.stderr.write(`unknown command "${command}"\n\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof ConfigError ? 'configuration error: ' : ''}${(error as Error).message}\n`);
    process.exitCode = 1;
  },
);
