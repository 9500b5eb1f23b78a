import { readFileSync } from 'node:fs';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/app/config.js';
import { DEFAULT_PORTS, ROLES } from '../../src/app/roles.js';

// No container engine runs the tests: these read Dockerfile and docker-compose.yml against the code.
const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
const dockerfile = read('Dockerfile');
const compose = read('docker-compose.yml');

/** The script of the Dockerfile's HEALTHCHECK, run with a stand-in `fetch`: which URL it probes, and its exit code. */
async function healthcheck(env: Record<string, string>, answer: () => Promise<{ status: number }>) {
  const line = /^\s*CMD (\["node", "-e", .*\])$/m.exec(dockerfile.slice(dockerfile.indexOf('HEALTHCHECK')));
  const [, , script] = JSON.parse(line?.[1] ?? '[]') as string[];
  let probed = '';
  const exited = new Promise<number>((resolve) => {
    const fetch = (url: string) => {
      probed = url;
      return answer();
    };
    new Function('process', 'fetch', 'AbortSignal', script ?? '')({ env, exit: resolve }, fetch, AbortSignal);
  });
  return { code: await exited, url: new URL(probed) };
}

describe('the Dockerfile HEALTHCHECK', () => {
  const distributed = { DATABASE_URL: 'postgres://db/intake', NATS_URL: 'nats://nats:4222' };
  const ok = () => Promise.resolve({ status: 200 });

  it('probes the port the service listens on, derived as the configuration derives it', async () => {
    const cases: Record<string, string>[] = [
      {},
      { ROLE: 'all' },
      { ROLE: 'validation,processing' },
      { ROLE: ' query ' },
      { ROLE: 'query,query' },
      { ROLE: 'routing', PORT: '6005' },
      { PORT: '9000' },
      ...ROLES.map((role) => ({ ROLE: role })),
    ];
    for (const env of cases) {
      const { url } = await healthcheck(env, ok);
      const config = loadConfig(env.ROLE ? { ...distributed, ...env } : env);
      expect(`${env.ROLE} ${url.port}`).toBe(`${env.ROLE} ${config.port}`);
      expect(url.hostname).toBe('127.0.0.1');
    }
    for (const role of ROLES) expect((await healthcheck({ ROLE: role }, ok)).url.port).toBe(String(DEFAULT_PORTS[role]));
  });

  it('is healthy when readiness answers 200, and unhealthy on 503 or no answer', async () => {
    const ready = await healthcheck({ ROLE: 'query' }, ok);
    expect(ready.url.pathname).toBe('/health/ready');
    expect(ready.code).toBe(0);
    expect((await healthcheck({}, () => Promise.resolve({ status: 503 }))).code).toBe(1);
    expect((await healthcheck({}, () => Promise.reject(new Error('ECONNREFUSED')))).code).toBe(1);
  });
});

describe('docker-compose.yml', () => {
  /** Each top-level service's lines. */
  const services = new Map<string, string>();
  const body = compose.slice(compose.indexOf('\nservices:\n'), compose.indexOf('\nvolumes:\n'));
  for (const block of body.split(/\n(?= {2}[a-z-]+:\n)/).slice(1)) services.set(/^ {2}([a-z-]+):/.exec(block)?.[1] ?? '', block);

  it('runs each role on its own port, published on loopback', () => {
    for (const role of ROLES) {
      const service = services.get(role) ?? '';
      const port = DEFAULT_PORTS[role];
      expect(service).toContain(`ROLE: ${role}\n`);
      expect(service).toContain(`PORT: '${port}'\n`);
      expect(service).toContain(`ports: ['127.0.0.1:${port}:${port}']`);
      expect(service).toContain('<<: *intake\n');
    }
  });

  it('runs every Intake container under an init, so SIGTERM reaches node from the start', () => {
    expect(/^x-intake: &intake\n(?: {2}.*\n)*? {2}init: true\n/m.test(compose)).toBe(true);
    expect(services.get('embedded')).toContain('\n    init: true\n');
  });

  /** `${NAME:-default}` as Compose interpolates it: the default when NAME is unset or empty. */
  const interpolate = (text: string, env: Record<string, string>) =>
    text.replace(/\$\{(\w+):-([^}]*)\}/g, (_, name: string, fallback: string) => env[name] || fallback);
  const setting = (block: string, name: string) => new RegExp(`^ +${name}: (.*)$`, 'm').exec(block)?.[1] ?? '';
  const intakeEnvironment = compose.slice(compose.indexOf('x-intake:'), compose.indexOf('\nservices:\n'));

  it.each(['intake', 'p@ss/w:rd%', 'a/b', '100%41', 'user:pw@host'])(
    'hands the roles the POSTGRES_PASSWORD the database was given, even %j',
    (password) => {
      const env = { POSTGRES_PASSWORD: password === 'intake' ? '' : password };
      const given = interpolate(setting(services.get('postgres') ?? '', 'POSTGRES_PASSWORD'), env);
      const url = interpolate(setting(intakeEnvironment, 'DATABASE_URL'), env);
      const pgPassword = interpolate(setting(intakeEnvironment, 'PGPASSWORD'), env);
      expect(given).toBe(password);
      expect(loadConfig({ DATABASE_URL: url, NATS_URL: 'nats://nats:4222', ROLE: 'query' }).databaseUrl).toBe(url);
      // The PostgreSQL client reads PGPASSWORD from the environment when the URL has no password.
      const saved = process.env.PGPASSWORD;
      process.env.PGPASSWORD = pgPassword;
      try {
        const client = new pg.Client({ connectionString: url });
        expect({ user: client.user, password: client.password, host: client.host, port: client.port, database: client.database }).toEqual({
          user: 'intake',
          password,
          host: 'postgres',
          port: 5432,
          database: 'intake',
        });
      } finally {
        if (saved === undefined) delete process.env.PGPASSWORD;
        else process.env.PGPASSWORD = saved;
      }
    },
  );

  it('calls PostgreSQL healthy only once it answers over TCP, as the roles connect', () => {
    expect(services.get('postgres')).toMatch(/test: \['CMD', 'pg_isready', '-h', '127\.0\.0\.1'/);
  });
});

describe('docs/distributed.md', () => {
  it('gives the containers no ADMIN_TOKEN they refuse (under 16 characters on a reachable interface)', () => {
    const tokens = [...read('docs/distributed.md').matchAll(/ADMIN_TOKEN=(\S+)/g)].map((match) => match[1] ?? '');
    expect(tokens.length).toBeGreaterThan(0);
    for (const token of tokens) expect(token.startsWith('$') || token.length >= 16, token).toBe(true);
  });
});
