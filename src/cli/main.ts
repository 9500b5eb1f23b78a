import { parseArgs, type ParseArgsConfig } from 'node:util';
import { loadConfig, loadDotEnv, type Config } from '../app/config.js';
import { createLogger } from '../app/logger.js';
import { version } from '../app/version.js';
import { appsCreate, appsList, keysCreate, keysList, keysRevoke, rulesList, type AdminTarget } from './admin-commands.js';
import { CliError } from './cli-error.js';
import { failureMessage } from './failure-message.js';
import { outputFor } from './output.js';

const HELP = `intake ${version} — durable JSON ingestion

Usage: intake <command> [options]

Commands:
  serve                       Run the HTTP service (the default)
      --role ROLES              distributed mode: which services (same as ROLE)
  migrate                     Apply pending database migrations and exit
  replay                      Rebuild views from the event store of a stopped server and exit
                                (distributed: the views of the roles in ROLE, from the broker's stream)
      --subscriber NAME         only this view (default: every view)
  backup FILE                 Copy the SQLite database to a new file, consistent, while Intake runs
  apps create NAME            Create an application
      --id APP_ID               its id (generated when absent)
  apps list                   List applications
  keys create APP_ID          Issue a write key (shown once)
      --name NAME               a label for the key
  keys list APP_ID            List an application's write keys
  keys revoke APP_ID KEY_ID   Revoke a write key
  rules list APP_ID           List an application's routing rules
  secret-key adopt            Make INTAKE_SECRET_KEY (or DATA_DIR's secret-key) the key of a stopped server's
                                database, when the old one is lost; lists the signing secrets that do not open
      --yes                     and drops them (without it, nothing changes while any would be dropped)
  import FILE                 Send a file of messages to a running Intake (NDJSON or CSV, - for stdin, .gz)
      --url URL                 the server (INTAKE_URL, default http://127.0.0.1:PORT)
      --write-key KEY           for Segment-style messages (INTAKE_WRITE_KEY), sent to /v1/import
      --token TOKEN             for partner items: the admin token or the app's write key
      --format ndjson|csv       --batch-size N (100)   --rejects PATH   --json
  help                        Show this help

  migrate, replay, backup, apps, keys, rules, secret-key and import print text for a person; --json prints JSON instead.
  apps, keys and rules call a running server: INTAKE_URL (default http://127.0.0.1:PORT) with ADMIN_TOKEN.

Configuration comes from the environment and an optional .env file:
  PORT (8000), HOST (0.0.0.0), DATABASE_URL (sqlite:./data/intake.db or postgres://…),
  ROLE (all), NATS_URL, DB_SCHEMA_PREFIX, ADMIN_TOKEN, METRICS_TOKEN,
  LOG_LEVEL (info), BODY_LIMIT (1048576 bytes), DURABILITY (power-loss | process-crash),
  MAX_QUEUED_APPENDS (10000)
`;

type Options = NonNullable<ParseArgsConfig['options']>;
type Values = Record<string, string | boolean | undefined>;

interface CommandShape {
  /** Positional arguments after the command words, by name. */
  readonly args: readonly string[];
  readonly options: Options;
}
/** A command that reads none of the server's settings, so that a bad DATABASE_URL does not stop it. */
interface ConfigFreeCommand extends CommandShape {
  readonly needsConfig: false;
  run(values: Values, args: readonly string[]): Promise<void>;
}
interface ConfiguredCommand extends CommandShape {
  readonly needsConfig?: true;
  run(config: Config, values: Values, args: readonly string[]): Promise<void>;
}
type Command = ConfigFreeCommand | ConfiguredCommand;

const json: Options = { json: { type: 'boolean' } };
const str = (value: string | boolean | undefined) => (typeof value === 'string' ? value : undefined);

// Commands other than serve log warnings and errors only, on stderr: their result is what they print.
const quietLogger = (config: Config) => createLogger(process.env.LOG_LEVEL ? config.logLevel : 'warn', 2);
/**
 * The server the admin commands call: they read only INTAKE_URL (or PORT) and ADMIN_TOKEN, so that a
 * setting only the server reads (BODY_LIMIT, DATABASE_URL…) cannot stop them.
 */
const target = (): AdminTarget => ({
  url: process.env.INTAKE_URL || `http://127.0.0.1:${process.env.PORT || 8000}`,
  token: process.env.ADMIN_TOKEN || undefined,
});
const out = (values: Values) => outputFor(values.json === true);

const COMMANDS: Record<string, Command> = {
  serve: {
    args: [],
    options: { role: { type: 'string' } },
    // Commands load what they need when they run: `intake serve` on a taken port, `--help` and the
    // admin commands answer without loading every context first.
    run: async (config) => (await import('./serve.js')).serve(config, createLogger(config.logLevel)),
  },
  migrate: {
    args: [],
    options: json,
    run: async (config, values) => (await import('./migrate.js')).migrate(config, quietLogger(config), out(values)),
  },
  replay: {
    args: [],
    // Taken as a list only to refuse a second: the last of several would have been replayed alone, silently.
    options: { ...json, subscriber: { type: 'string', multiple: true } },
    run: async (config, values) => {
      const named = Array.isArray(values.subscriber) ? values.subscriber.map(String) : [];
      if (named.length > 1)
        throw new CliError('--subscriber names one view: replay once per view, or leave it out to rebuild every view', 2);
      await (await import('./replay.js')).replay(config, quietLogger(config), out(values), named[0]);
    },
  },
  backup: {
    args: ['FILE'],
    options: json,
    run: async (config, values, [file]) => (await import('./backup.js')).backup(config, out(values), file),
  },
  'apps create': {
    args: ['NAME'],
    needsConfig: false,
    options: { ...json, id: { type: 'string' } },
    run: (values, [name = '']) => appsCreate(target(), out(values), name, str(values.id)),
  },
  'apps list': { args: [], needsConfig: false, options: json, run: (values) => appsList(target(), out(values)) },
  'keys create': {
    args: ['APP_ID'],
    needsConfig: false,
    options: { ...json, name: { type: 'string' } },
    run: (values, [app = '']) => keysCreate(target(), out(values), app, str(values.name)),
  },
  'keys list': { args: ['APP_ID'], needsConfig: false, options: json, run: (values, [app = '']) => keysList(target(), out(values), app) },
  'keys revoke': {
    args: ['APP_ID', 'KEY_ID'],
    needsConfig: false,
    options: json,
    run: (values, [app = '', key = '']) => keysRevoke(target(), out(values), app, key),
  },
  'rules list': { args: ['APP_ID'], needsConfig: false, options: json, run: (values, [app = '']) => rulesList(target(), out(values), app) },
  'secret-key adopt': {
    args: [],
    options: { ...json, yes: { type: 'boolean' } },
    run: async (config, values) => (await import('./secret-key.js')).adoptKey(config, out(values), { yes: values.yes === true }),
  },
  // Import talks to a running server over HTTP: it needs none of the server's configuration.
  import: {
    args: ['FILE'],
    needsConfig: false,
    options: {
      url: { type: 'string' },
      'write-key': { type: 'string' },
      token: { type: 'string' },
      format: { type: 'string' },
      'batch-size': { type: 'string' },
      rejects: { type: 'string' },
      ...json,
    },
    async run(values, [file]) {
      const { runImport } = await import('./import.js');
      const code = await runImport({
        file,
        url: str(values.url),
        writeKey: str(values['write-key']),
        token: str(values.token),
        format: str(values.format),
        batchSize: str(values['batch-size']),
        rejects: str(values.rejects),
        json: values.json === true,
      });
      if (code !== 0) process.exitCode = code;
    },
  },
};

const GROUPS = new Set(['apps', 'keys', 'rules', 'secret-key']);

/** Parses the command line and runs the command; the answer is the exit code (2: bad usage). */
export async function main(argv: string[]): Promise<number> {
  if (argv[0] === '--version' || argv[0] === '-v') {
    process.stdout.write(`${version}\n`);
    return 0;
  }
  const asksHelp = (word: string | undefined) => ['help', '--help', '-h'].includes(word ?? '');
  // `intake keys --help` as well as `intake --help`: a group's help is the same page.
  if (asksHelp(argv[0])) {
    process.stdout.write(HELP);
    return 0;
  }
  // `intake keys --help`: the group's commands.
  if (GROUPS.has(argv[0] ?? '') && asksHelp(argv[1])) {
    process.stdout.write(helpOf(argv[0] ?? '', `intake ${argv[0]} <command>`));
    return 0;
  }
  const words = argv[0] === undefined || argv[0].startsWith('-') ? ['serve'] : GROUPS.has(argv[0]) ? argv.slice(0, 2) : argv.slice(0, 1);
  const name = words.join(' ');
  const command = COMMANDS[name];
  if (!command) {
    // `intake apps` alone names a group, not a command: say which commands it has.
    const group = words.length === 1 && GROUPS.has(name) ? Object.keys(COMMANDS).filter((key) => key.startsWith(`${name} `)) : [];
    return usage(group.length > 0 ? `"${name}" needs a command: ${group.join(', ')}` : `unknown command "${name}"`);
  }
  const rest = argv[0] === undefined || argv[0].startsWith('-') ? argv : argv.slice(words.length);

  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...command.options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: true,
    });
  } catch (error) {
    return usage((error as Error).message);
  }
  if (parsed.values.help) {
    process.stdout.write(helpOf(name, `intake ${[name, ...command.args].join(' ')} [options]`));
    return 0;
  }
  if (parsed.positionals.length !== command.args.length) {
    return usage(
      `intake ${name} takes ${command.args.length === 0 ? 'no arguments' : command.args.join(' ')} (got ${parsed.positionals.length})`,
    );
  }

  loadDotEnv();
  if (typeof parsed.values.role === 'string') process.env.ROLE = parsed.values.role;
  if (command.needsConfig === false) await command.run(parsed.values, parsed.positionals);
  else await command.run(loadConfig(), parsed.values, parsed.positionals);
  return 0;
}

/**
 * The part of HELP about one command, or a group's commands, with the options listed under each: a
 * command's own `--help` answers what it takes, not the whole page.
 */
function helpOf(name: string, synopsis: string): string {
  const picked: string[] = [];
  let taking = false;
  for (const line of HELP.split('\n')) {
    // A command's line starts two spaces in; its options, further in, follow it.
    if (/^ {2}\S/.test(line)) taking = line.slice(2).startsWith(`${name} `);
    else if (!/^ {6}/.test(line)) taking = false;
    if (taking) picked.push(line);
  }
  return `Usage: ${synopsis}\n\n${picked.join('\n')}\n\nintake --help lists every command and the configuration.\n`;
}

function usage(problem: string): number {
  process.stderr.write(`intake: ${problem}\n\n${HELP}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`intake: ${failureMessage(error)}\n`);
    // Whatever may still hold the event loop (a half-started server, a timer) must not keep a failed command alive.
    process.exit(error instanceof CliError ? error.exitCode : 1);
  },
);
