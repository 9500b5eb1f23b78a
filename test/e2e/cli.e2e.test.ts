import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { startServerProcess } from '../support/server-process.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'intake-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cli = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    encoding: 'utf8',
  });

describe('the intake CLI', () => {
  it('prints its help', () => {
    const result = cli(['--help']);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/serve[\s\S]*migrate[\s\S]*replay/);
    expect(cli(['frobnicate']).status).toBe(2);
  });

  it('migrates a new database and reports it is up to date the second time', () => {
    const env = { DATABASE_URL: `sqlite:${join(dir, 'migrate.db')}` };
    expect(cli(['migrate'], env).stdout).toMatch(/applied \d+ migration/);
    expect(cli(['migrate'], env).stdout).toMatch(/up to date/);
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
    expect(result.stdout).toMatch(/replay finished/);

    const again = await startServerProcess(env);
    expect(await readAll(again.url)).toEqual(before);
    await again.kill();
  });
});
