import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';

const dir = mkdtempSync(join(tmpdir(), 'intake-durability-'));
const env = { DATABASE_URL: `sqlite:${join(dir, 'intake.db')}`, ADMIN_TOKEN: 'durability-token' };
const headers = { authorization: 'Bearer durability-token', 'content-type': 'application/json' };
const servers: ServerProcess[] = [];

afterAll(async () => {
  await Promise.all(servers.map((s) => s.kill('SIGKILL')));
  rmSync(dir, { recursive: true, force: true });
});

describe('durability', () => {
  it('keeps every acknowledged item when the server is killed with SIGKILL under concurrent writes', async () => {
    const first = await startServerProcess(env);
    servers.push(first);
    const acknowledged: string[] = [];
    let killed = false;

    const writer = async (worker: number) => {
      for (let i = 0; !killed; i++) {
        try {
          const response = await fetch(`${first.url}/ingest`, {
            method: 'POST',
            headers,
            body: JSON.stringify({ partner_id: `w${worker}`, payload: { i, note: 'x'.repeat(200) } }),
          });
          if (response.status === 201) acknowledged.push(((await response.json()) as { id: string }).id);
        } catch {
          return; // the connection died with the server: this request was never acknowledged
        }
      }
    };
    const writers = Array.from({ length: 32 }, (_, w) => writer(w));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    killed = true;
    await first.kill('SIGKILL');
    await Promise.all(writers);
    expect(acknowledged.length).toBeGreaterThan(100);

    const second = await startServerProcess(env);
    servers.push(second);
    const stored = new Set<string>();
    let cursor: string | null = null;
    do {
      const page = (await (await fetch(`${second.url}/ingest/all?limit=1000${cursor ? `&cursor=${cursor}` : ''}`, { headers })).json()) as {
        items: Array<{ id: string }>;
        next_cursor: string | null;
      };
      for (const item of page.items) stored.add(item.id);
      cursor = page.next_cursor;
    } while (cursor);
    const lost = acknowledged.filter((id) => !stored.has(id));
    expect(lost).toEqual([]);
    const one = await fetch(`${second.url}/ingest/${acknowledged.at(-1)}`, { headers });
    expect(one.status).toBe(200);
    await second.kill();
  });
});
