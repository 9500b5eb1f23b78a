import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { startServerProcess } from '../support/server-process.js';
import { INTAKE_CLI } from '../support/intake-cli.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'intake-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cli = (args: string[], env: Record<string, string> = {}, timeout?: number) =>
  spawnSync(process.execPath, [...INTAKE_CLI, ...args], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    encoding: 'utf8',
    timeout,
  });

describe('the intake CLI', () => {
  it('prints its help', () => {
    const result = cli(['--help']);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/serve[\s\S]*migrate[\s\S]*replay/);
    expect(cli(['frobnicate']).status).toBe(2);
    for (const args of [
      ['keys', '--help'],
      ['apps', '-h'],
    ])
      expect(cli(args).status, args.join(' ')).toBe(0);
    // A command's or a group's own help is about it alone.
    const importing = cli(['import', '--help']);
    expect(importing.status).toBe(0);
    expect(importing.stdout).toMatch(/^Usage: intake import FILE \[options\]\n/);
    expect(importing.stdout).toContain('--batch-size N');
    expect(importing.stdout).not.toContain('secret-key adopt');
    const keys = cli(['keys', '--help']).stdout;
    expect(keys).toMatch(/keys create APP_ID[\s\S]*--name NAME[\s\S]*keys list APP_ID[\s\S]*keys revoke APP_ID KEY_ID/);
    expect(keys).not.toContain('apps create');
  });

  it.each([
    [['frobnicate'], /unknown command "frobnicate"/],
    [['serve', '--bogus'], /Unknown option '--bogus'/],
    [['apps', 'frob'], /unknown command "apps frob"/],
    [['apps'], /"apps" needs a command: apps create, apps list/],
    [['secret-key'], /"secret-key" needs a command: secret-key /],
    [['keys', 'list'], /takes APP_ID/],
  ])('refuses %j with the usage and exit code 2, before doing anything', (args, message) => {
    const result = cli(args, { DATABASE_URL: `sqlite:${join(dir, 'never-created', 'x.db')}` }, 10_000);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toContain('Usage: intake <command>');
    expect(() => statSync(join(dir, 'never-created'))).toThrow();
  });

  it('migrates a new database and reports it is up to date the second time', () => {
    const env = { DATABASE_URL: `sqlite:${join(dir, 'migrate.db')}` };
    const first = cli(['migrate'], env);
    expect(first.stdout).toMatch(/^\S*migrate\.db: applied \d+ migration\(s\): event_store\/0001_/);
    // Text for a person: no JSON log lines on stdout.
    expect(first.stdout).not.toContain('{');
    expect(cli(['migrate'], env).stdout).toMatch(/migrate\.db: database is up to date\n$/);
    const asJson = cli(['migrate', '--json'], env);
    expect(JSON.parse(asJson.stdout)).toEqual({ database: expect.stringContaining('migrate.db'), applied: [] });
  });

  it('refuses a replay asked for two views at once, rather than replay the last alone', () => {
    const result = cli(['replay', '--subscriber', 'query', '--subscriber', 'statistics'], {
      DATABASE_URL: `sqlite:${join(dir, 'two-views.db')}`,
    });
    expect([result.status, result.stderr.trim()]).toEqual([
      2,
      'intake: --subscriber names one view: replay once per view, or leave it out to rebuild every view',
    ]);
  });

  it('refuses to replay or adopt a key on a database that does not exist, rather than make an empty one', () => {
    const missing = join(dir, 'typo', 'intake.db');
    for (const args of [['replay'], ['secret-key', 'adopt']]) {
      const result = cli(args, { DATABASE_URL: `sqlite:${missing}`, INTAKE_SECRET_KEY: 'a-secret-key-of-16+' });
      expect([result.status, result.stderr.trim()], args.join(' ')).toEqual([
        1,
        `intake: there is no database at ${missing}: check DATABASE_URL`,
      ]);
    }
    expect(() => statSync(join(dir, 'typo'))).toThrow();
  });

  it('refuses a DATA_DIR that is a file, saying so', () => {
    const file = join(dir, 'not-a-directory');
    writeFileSync(file, 'x');
    const result = cli(['serve'], { DATABASE_URL: `sqlite:${join(dir, 'dd.db')}`, DATA_DIR: file, HOST: '127.0.0.1', PORT: '0' }, 30_000);
    expect([result.status, result.stderr]).toEqual([1, expect.stringMatching(/DATA_DIR .*not-a-directory is a file, not a directory/)]);
  });

  it('refuses a bad configuration with a clear message', () => {
    const result = cli(['migrate'], { PORT: 'eighty' });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/PORT must be an integer/);
  });

  it('generates an admin token on first start, prints it once and stores only its digest, owner-only', async () => {
    const dataDir = join(dir, 'token');
    const env = { DATABASE_URL: `sqlite:${join(dataDir, 'intake.db')}`, ADMIN_TOKEN: '' };
    const first = await startServerProcess(env);
    const token = /\n {4}(intk_admin_\S+)\n/.exec(first.output())?.[1];
    expect(token).toBeDefined();
    expect((await fetch(`${first.url}/ingest/all`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    await first.kill();
    expect(statSync(join(dataDir, 'admin-token.sha256')).mode & 0o777).toBe(0o600);
    const second = await startServerProcess(env);
    expect(second.output()).not.toContain('intk_admin_');
    expect((await fetch(`${second.url}/ingest/all`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    await second.kill();
  });

  it('neither shows nor keeps a generated token when the first start fails, so the next start shows one', async () => {
    const dataDir = join(dir, 'failed-first');
    const env = { DATABASE_URL: `sqlite:${join(dataDir, 'intake.db')}`, ADMIN_TOKEN: '' };
    const failed = cli(['serve'], { ...env, WEBHOOK_RETRY_SCHEDULE: 'abc', PORT: '0' }, 30_000);
    expect(failed.status).toBe(1);
    expect(failed.stderr).toMatch(/WEBHOOK_RETRY_SCHEDULE/);
    expect(failed.stdout).not.toContain('intk_admin_');
    expect(() => statSync(join(dataDir, 'admin-token.sha256'))).toThrow();
    const fixed = await startServerProcess(env);
    expect(/\n {4}(intk_admin_\S+)\n/.exec(fixed.output())?.[1]).toBeDefined();
    await fixed.kill();
  });

  it('replays every view of a stopped server into the same state', async () => {
    const env = { DATABASE_URL: `sqlite:${join(dir, 'replay.db')}`, ADMIN_TOKEN: 'cli-token' };
    const headers = { authorization: 'Bearer cli-token', 'content-type': 'application/json' };
    const server = await startServerProcess(env);
    for (let i = 0; i < 20; i++) {
      await fetch(`${server.url}/ingest`, { method: 'POST', headers, body: JSON.stringify({ partner_id: `p${i % 2}`, payload: { i } }) });
    }
    const readAll = async (url: string) => {
      for (;;) {
        const page = (await (await fetch(`${url}/query/all?limit=1000`, { headers })).json()) as { items: Array<{ status: string }> };
        if (page.items.length === 20 && page.items.every((item) => item.status === 'processed')) return page;
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const before = await readAll(server.url);
    await server.kill();
    // Lose the view entirely: only the replay can bring it back.
    const db = new Database(join(dir, 'replay.db'));
    db.prepare('DELETE FROM query_items').run();
    db.close();

    const result = cli(['replay'], env);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^replay finished: rebuilt .*query.* up to position \d+ in \d+ ms\n$/);

    const again = await startServerProcess(env);
    expect(await readAll(again.url)).toEqual(before);
    await again.kill();
  });

  it('backs up a database Intake keeps writing to, consistent, with every item acknowledged before it began', async () => {
    const env = { DATABASE_URL: `sqlite:${join(dir, 'busy.db')}`, ADMIN_TOKEN: 'cli-token' };
    const headers = { authorization: 'Bearer cli-token', 'content-type': 'application/json' };
    const server = await startServerProcess(env);
    const acknowledged: string[] = [];
    let writing = true;
    const writer = async () => {
      for (let i = 0; writing; i++) {
        const body = JSON.stringify({ partner_id: 'p', event_type: 'order', payload: { i, pad: 'x'.repeat(2000) } });
        const response = await fetch(`${server.url}/ingest`, { method: 'POST', headers, body });
        if (response.status === 201) acknowledged.push(((await response.json()) as { id: string }).id);
      }
    };
    const writers = Promise.all([writer(), writer(), writer()]);
    try {
      while (acknowledged.length < 300) await new Promise((r) => setTimeout(r, 20));
      const before = [...acknowledged];
      const file = join(dir, 'busy-backup.db');
      // Writes go on all along: SQLite's online backup (the sqlite3 shell's .backup) started over at each and never ended.
      const backup = spawn(process.execPath, [...INTAKE_CLI, 'backup', file, '--json'], { cwd: root, env: { ...process.env, ...env } });
      let stdout = '';
      backup.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => backup.once('exit', resolve));
      expect(code).toBe(0);
      expect(acknowledged.length).toBeGreaterThan(before.length);
      expect(JSON.parse(stdout)).toMatchObject({ backup: file, secret_key_file: join(dir, 'secret-key') });
      const copy = new Database(file, { readonly: true });
      expect(copy.pragma('quick_check', { simple: true })).toBe('ok');
      const stored = new Set((copy.prepare('SELECT id FROM ingest_items').all() as Array<{ id: string }>).map((row) => row.id));
      copy.close();
      expect(before.filter((id) => !stored.has(id))).toEqual([]);
      // Never over a file: a second run into the same one is refused.
      const again = cli(['backup', file], env);
      expect(again.status).toBe(2);
      expect(again.stderr).toMatch(/exists: a backup is written to a new file/);
      // Every payload is in them: the database, its WAL and the copy are for their owner's eyes only.
      for (const made of [join(dir, 'busy.db'), join(dir, 'busy.db-wal'), file]) expect(statSync(made).mode & 0o777).toBe(0o600);
      symlinkSync(join(dir, 'nothing-there'), join(dir, 'dangling.db'));
      const throughLink = cli(['backup', join(dir, 'dangling.db')], env);
      expect([throughLink.status, throughLink.stderr]).toEqual([
        2,
        expect.stringContaining('dangling.db exists: a backup is written to a new file'),
      ]);
      const nowhere = cli(['backup', join(dir, 'no-such-dir', 'copy.db')], env);
      expect(nowhere.status).toBe(2);
      expect(nowhere.stderr).toContain(`there is no directory ${join(dir, 'no-such-dir')} to write the backup into: make it first`);
    } finally {
      writing = false;
      await writers;
      await server.kill();
    }
  });

  it('warns at start of a database file every user of the machine may read, made so by an earlier release', async () => {
    const path = join(dir, 'shared-mode.db');
    writeFileSync(path, '', { mode: 0o644 });
    chmodSync(path, 0o644);
    const server = await startServerProcess({ DATABASE_URL: `sqlite:${path}`, ADMIN_TOKEN: 'cli-token' });
    expect(await server.kill()).toBe(0);
    expect(server.output()).toContain(`${path} is readable by every user of this machine (mode 644) and holds every payload: chmod 600`);
  });

  it('leaves the database whole and no WAL behind after a clean stop', async () => {
    const path = join(dir, 'clean-stop.db');
    const server = await startServerProcess({ DATABASE_URL: `sqlite:${path}`, ADMIN_TOKEN: 'cli-token' });
    const headers = { authorization: 'Bearer cli-token', 'content-type': 'application/json' };
    for (let i = 0; i < 3; i++)
      expect(
        (await fetch(`${server.url}/ingest`, { method: 'POST', headers, body: JSON.stringify({ partner_id: 'p', payload: { i } }) }))
          .status,
      ).toBe(201);
    expect(existsSync(`${path}-wal`)).toBe(true);
    expect(await server.kill()).toBe(0);
    // The writer closed last: it copied the WAL into the file and removed it.
    expect(existsSync(`${path}-wal`)).toBe(false);
    const copy = new Database(path, { readonly: true });
    expect(copy.prepare('SELECT count(*) AS n FROM ingest_items').get()).toEqual({ n: 3 });
    copy.close();
  });

  it('refuses to start when the generated secret-key file is missing, saying so, and keeps no new key in its place', async () => {
    const keyDir = join(dir, 'lost-key');
    const env = { DATABASE_URL: `sqlite:${join(keyDir, 'intake.db')}`, ADMIN_TOKEN: 'cli-token' };
    const first = await startServerProcess(env);
    expect(await first.kill()).toBe(0);
    const keyFile = join(keyDir, 'secret-key');
    const kept = readFileSync(keyFile);
    rmSync(keyFile);
    const refused = cli(['serve'], { ...env, HOST: '127.0.0.1', PORT: '0' }, 30_000);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain(`${keyFile} is missing, and this database's webhook signing secrets`);
    // A key generated in its place would be found at the next start, and taken for the database's.
    expect(existsSync(keyFile)).toBe(false);
    writeFileSync(keyFile, kept, { mode: 0o600 });
    const restored = await startServerProcess(env);
    expect(await restored.kill()).toBe(0);
  });

  it('says to raise the limit of open files when it is too low to start, rather than print a stack trace', () => {
    const result = spawnSync('bash', ['-c', `ulimit -n 128 && exec "${process.execPath}" ${INTAKE_CLI.join(' ')} serve`], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: `sqlite:${join(dir, 'few-files.db')}`, ADMIN_TOKEN: 'cli-token', HOST: '127.0.0.1', PORT: '0' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^intake: EMFILE: too many open files, .*raise the limit of open files, ulimit -n 1024 or more\n$/m);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('exits with code 1 and a one-line message within 5 s when the port is taken', async () => {
    const first = await startServerProcess({ DATABASE_URL: `sqlite:${join(dir, 'port-a.db')}`, ADMIN_TOKEN: 'a' });
    const port = new URL(first.url).port;
    const started = Date.now();
    const second = cli(
      ['serve'],
      { DATABASE_URL: `sqlite:${join(dir, 'port-b', 'b.db')}`, ADMIN_TOKEN: 'b', HOST: '127.0.0.1', PORT: port },
      5000,
    );
    expect(Date.now() - started).toBeLessThan(5000);
    expect(second.status).toBe(1);
    expect(second.stderr).toBe(
      `intake: port ${port} on 127.0.0.1 is already in use (another Intake still running?): stop it or set PORT\n`,
    );
    // Nothing was started: not even the second database was created.
    expect(() => statSync(join(dir, 'port-b'))).toThrow();
    expect((await fetch(`${first.url}/health`)).status).toBe(200);
    await first.kill();
  });

  it('refuses a short admin token on an interface other machines reach, and takes it on loopback', async () => {
    const exposed = cli(
      ['serve'],
      { DATABASE_URL: `sqlite:${join(dir, 'short-token', 'a.db')}`, ADMIN_TOKEN: 'change-me', HOST: '0.0.0.0' },
      5000,
    );
    expect(exposed.status).toBe(1);
    expect(exposed.stderr).toContain('ADMIN_TOKEN has 9 characters and HOST 0.0.0.0 is reachable from other machines');
    expect(() => statSync(join(dir, 'short-token'))).toThrow();
    const local = await startServerProcess({ DATABASE_URL: `sqlite:${join(dir, 'short-token-local.db')}`, ADMIN_TOKEN: 'change-me' });
    expect((await fetch(`${local.url}/api/applications`, { headers: { authorization: 'Bearer change-me' } })).status).toBe(200);
    await local.kill();
  });

  it('refuses to start with another INTAKE_SECRET_KEY than the database has, and adopts a new key when the old is lost', async () => {
    const env = {
      DATABASE_URL: `sqlite:${join(dir, 'sealed.db')}`,
      ADMIN_TOKEN: 'sealed',
      INTAKE_SECRET_KEY: 'the-first-secret-key',
      WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
    };
    const first = await startServerProcess(env);
    const post = (path: string, body: unknown) =>
      fetch(`${first.url}${path}`, {
        method: 'POST',
        headers: { authorization: 'Bearer sealed', 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await post('/api/applications', { name: 'Shop', app_id: 'shop' })).status).toBe(201);
    const created = await post('/api/routing-rules', {
      app_id: 'shop',
      rule_name: 'hook',
      condition: {},
      destination_type: 'webhook',
      destination_config: { url: 'http://127.0.0.1:9/hook' },
    });
    expect(created.status).toBe(201);
    const { rule_id: ruleId } = (await created.json()) as { rule_id: string };
    await first.kill();

    const other = { ...env, INTAKE_SECRET_KEY: 'another-secret-key' };
    const refused = cli(['serve'], { ...other, HOST: '127.0.0.1', PORT: '0' }, 60_000);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(
      /\(INTAKE_SECRET_KEY, or the data directory's generated secret-key file when it is unset\) is not the key this database's webhook signing secrets are sealed with/,
    );

    // Without a key to adopt (none set, none generated in DATA_DIR), nothing is made up and adopted.
    const keyless = cli(['secret-key', 'adopt'], { ...env, INTAKE_SECRET_KEY: '', DATA_DIR: join(dir, 'no-key-here') }, 60_000);
    expect([keyless.status, keyless.stderr]).toEqual([1, expect.stringMatching(/no key to adopt: INTAKE_SECRET_KEY is unset/)]);
    expect(() => statSync(join(dir, 'no-key-here', 'secret-key'))).toThrow();
    // Unconfirmed, the loss is only reported.
    const unconfirmed = cli(['secret-key', 'adopt'], other, 60_000);
    expect(unconfirmed.status).toBe(1);
    expect(unconfirmed.stderr).toContain(
      `1 rule(s) have a signing secret or destination credentials that do not open with this key, and adopting it would drop them. Nothing changed.`,
    );
    expect(unconfirmed.stderr).toContain(ruleId);
    expect(cli(['serve'], { ...other, HOST: '127.0.0.1', PORT: '0' }, 60_000).status).toBe(1);

    // The first key is lost: the new one is adopted, and the secret it cannot open is dropped.
    const adopted = cli(['secret-key', 'adopt', '--yes', '--json'], other, 60_000);
    expect(adopted.status).toBe(0);
    expect(JSON.parse(adopted.stdout)).toMatchObject({ dropped: [ruleId] });
    const again = await startServerProcess(other);
    expect((await fetch(`${again.url}/health`)).status).toBe(200);
    await again.kill();
  }, 120_000);

  it('names the admin token source at start-up, never the token', async () => {
    const server = await startServerProcess({ DATABASE_URL: `sqlite:${join(dir, 'source.db')}`, ADMIN_TOKEN: 'a-very-secret-token' });
    expect(server.output()).toContain('admin token: from the ADMIN_TOKEN environment variable');
    expect(server.output()).not.toContain('a-very-secret-token');
    await server.kill();
    const generated = await startServerProcess({ DATABASE_URL: `sqlite:${join(dir, 'source.db')}`, ADMIN_TOKEN: '' });
    expect(generated.output()).toMatch(
      /admin token: a new one, shown once the server is up; its digest will be kept in \S+admin-token\.sha256/,
    );
    await generated.kill();
    const again = await startServerProcess({ DATABASE_URL: `sqlite:${join(dir, 'source.db')}`, ADMIN_TOKEN: '' });
    expect(again.output()).toMatch(/admin token: the generated one whose digest is in \S+admin-token\.sha256/);
    await again.kill();
  });

  it('refuses to replay or migrate while a server holds the database, and replays once it died even by SIGKILL', async () => {
    const env = { DATABASE_URL: `sqlite:${join(dir, 'held', 'intake.db')}`, ADMIN_TOKEN: 'held' };
    const server = await startServerProcess(env);
    const refused = cli(['replay'], env);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/a running Intake \(pid \d+, intake serve\) holds \S+held\/intake\.db: stop it first/);
    // A second server on the same database is refused too.
    expect(cli(['serve'], { ...env, HOST: '127.0.0.1', PORT: '0' }, 10_000).stderr).toMatch(/another Intake \(pid \d+, intake serve\)/);
    // So are migrations, which would change tables under the running code.
    const migrate = cli(['migrate'], env);
    expect(migrate.status).toBe(1);
    expect(migrate.stderr).toMatch(/a running Intake \(pid \d+, intake serve\) holds \S+held\/intake\.db: stop it first\n$/);
    await server.kill('SIGKILL');
    // The pid file is left behind, naming a dead process: it is taken over.
    expect(statSync(join(dir, 'held', 'intake.db.pid')).isFile()).toBe(true);
    const replayed = cli(['replay', '--json'], env);
    expect(replayed.status).toBe(0);
    expect(JSON.parse(replayed.stdout)).toMatchObject({ replayed: expect.arrayContaining(['query']) });
    expect(() => statSync(join(dir, 'held', 'intake.db.pid'))).toThrow();
    expect(cli(['migrate'], env).stdout).toMatch(/held\/intake\.db: database is up to date\n$/);
  }, 120_000);

  it('says a server that answers 200 but is not Intake is not, rather than report a key revoked', async () => {
    // A maintenance page or a single-page app's fallback: 200 and HTML for every path.
    const page =
      "require('http').createServer((q, r) => { r.writeHead(200, { 'content-type': 'text/html' }); r.end('<p>back soon</p>'); })";
    const fake = spawn(process.execPath, ['-e', `const s = ${page}.listen(0, '127.0.0.1', () => console.log(s.address().port))`]);
    try {
      const port = await new Promise<string>((resolve) => fake.stdout.once('data', (data) => resolve(String(data).trim())));
      const env = { INTAKE_URL: `http://127.0.0.1:${port}`, ADMIN_TOKEN: 'admin-cli' };
      for (const args of [
        ['keys', 'revoke', 'shop', 'abc'],
        ['apps', 'create', 'Foo', '--id', 'foo'],
        ['keys', 'create', 'shop'],
        ['apps', 'list'],
      ]) {
        const run = cli(args, env);
        expect([run.status, run.stdout], args.join(' ')).toEqual([1, '']);
        expect(run.stderr).toMatch(/is not Intake's API \(.* answered HTTP 200\): check INTAKE_URL/);
      }
    } finally {
      fake.kill();
    }
  });

  it('answers the request in flight though the stop signal comes twice (Ctrl-C on npm start), and stops on SIGHUP too', async () => {
    for (const signals of [['SIGINT', 'SIGINT'], ['SIGHUP']] as const) {
      const server = await startServerProcess({ DATABASE_URL: `sqlite:${join(dir, `signals-${signals[0]}.db`)}`, ADMIN_TOKEN: 'signals' });
      const body = JSON.stringify({ partner_id: 'p', event_type: 'e', payload: { n: 1 } });
      const { hostname, port } = new URL(server.url);
      const answer = new Promise<number>((resolve, reject) => {
        const request = httpRequest(
          {
            host: hostname,
            port,
            method: 'POST',
            path: '/ingest',
            headers: { authorization: 'Bearer signals', 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
          },
          (response) => {
            response.resume();
            resolve(response.statusCode ?? 0);
          },
        );
        request.on('error', reject);
        // Half the body now, the rest after the signals: the request is in flight when they come.
        request.write(body.slice(0, 10));
        setTimeout(() => {
          for (const signal of signals) server.process.kill(signal);
          setTimeout(() => request.end(body.slice(10)), 300);
        }, 300);
      });
      expect(await answer).toBe(201);
      expect(await server.kill()).toBe(0);
    }
  }, 60_000);

  it('serves a database reached through a symbolic link, and keeps a second server off it by either name', async () => {
    const target = join(dir, 'linked-target.db');
    const link = join(dir, 'linked.db');
    // The file made first, as a volume layout would have it, then linked.
    const made = await startServerProcess({ DATABASE_URL: `sqlite:${target}`, ADMIN_TOKEN: 'linked' });
    await made.kill();
    symlinkSync(target, link);
    const server = await startServerProcess({ DATABASE_URL: `sqlite:${link}`, ADMIN_TOKEN: 'linked' });
    try {
      const ingested = await fetch(`${server.url}/ingest`, {
        method: 'POST',
        headers: { authorization: 'Bearer linked', 'content-type': 'application/json' },
        body: JSON.stringify({ partner_id: 'p', event_type: 'e', payload: {} }),
      });
      expect(ingested.status).toBe(201);
      const second = cli(['serve'], { DATABASE_URL: `sqlite:${target}`, ADMIN_TOKEN: 'linked', HOST: '127.0.0.1', PORT: '0' }, 30_000);
      expect([second.status, second.stderr]).toEqual([1, expect.stringMatching(/another Intake .* is using/)]);
    } finally {
      await server.kill();
    }
  }, 90_000);

  it('manages applications, write keys and rules through the running server', async () => {
    const server = await startServerProcess({ DATABASE_URL: `sqlite:${join(dir, 'admin.db')}`, ADMIN_TOKEN: 'admin-cli' });
    const env = { INTAKE_URL: server.url, ADMIN_TOKEN: 'admin-cli' };
    const created = cli(['apps', 'create', 'The Shop', '--id', 'shop'], env);
    expect(created.stdout).toBe('created application shop (The Shop)\n');
    // An id or key name asked for empty (an unset shell variable) is refused, never dropped for a generated one.
    const emptyId = cli(['apps', 'create', 'Nameless', '--id', ''], env);
    expect([emptyId.status, emptyId.stderr]).toEqual([1, expect.stringMatching(/app_id/)]);
    expect(cli(['keys', 'create', 'shop', '--name', ''], env).status).toBe(1);
    expect(cli(['apps', 'list'], env).stdout).toMatch(/^APP_ID\s+NAME\s+CREATED_AT\nshop\s+The Shop\s+\d{4}-\S+\n$/);
    // Settings only the server reads do not stop a command that calls it.
    const unrelated = cli(['apps', 'list'], { ...env, BODY_LIMIT: '10', DATABASE_URL: 'mysql://nowhere/x' });
    expect([unrelated.status, unrelated.stdout]).toEqual([0, expect.stringMatching(/^APP_ID/)]);

    const issued = JSON.parse(cli(['keys', 'create', 'shop', '--name', 'web', '--json'], env).stdout) as { key: string; key_id: string };
    expect(issued.key).toMatch(/^wk_/);
    const ingest = await fetch(`${server.url}/api/ingest/shop`, {
      method: 'POST',
      headers: { authorization: `Bearer ${issued.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ event_type: 'order_created', payload: { total: 1 } }),
    });
    expect(ingest.status).toBe(201);
    expect(cli(['keys', 'list', 'shop'], env).stdout).toMatch(new RegExp(`${issued.key_id}\\s+web\\s+\\S+\\s+-`));
    expect(cli(['keys', 'list', 'shop'], env).stdout).not.toContain(issued.key);
    expect(cli(['keys', 'revoke', 'shop', issued.key_id], env).stdout).toBe(`revoked write key ${issued.key_id} of application shop\n`);

    await fetch(`${server.url}/api/routing-rules`, {
      method: 'POST',
      headers: { authorization: 'Bearer admin-cli', 'content-type': 'application/json' },
      body: JSON.stringify({ app_id: 'shop', rule_name: 'copy', destination_type: 'database', destination_config: { table: 'copies' } }),
    });
    expect(cli(['rules', 'list', 'shop'], env).stdout).toMatch(
      /RULE_ID\s+NAME\s+EVENT_TYPE\s+DESTINATION\s+PRIORITY\s+ACTIVE\n\S+\s+copy\s+\*\s+database\s+0\s+yes/,
    );

    const refused = cli(['apps', 'list'], { ...env, ADMIN_TOKEN: 'wrong' });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/refused the admin token/);
    await server.kill();
    const down = cli(['apps', 'list'], env);
    expect(down.status).toBe(1);
    expect(down.stderr).toMatch(/no Intake answers at http:\/\/127\.0\.0\.1:\d+/);
  }, 180_000);
});
