import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const TOKEN = 'readme-walk-through-token';

/** The ```sh and ```bash blocks of one README section, in order. */
export function shellBlocks(markdown: string, heading: string): string[] {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  if (start < 0) throw new Error(`README has no "## ${heading}" section`);
  const end = markdown.indexOf('\n## ', start + 1);
  const section = markdown.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/^```(?:sh|bash)\n([\s\S]*?)^```$/gm)].map((match) => match[1] ?? '');
}

const readme = readFileSync(join(root, 'README.md'), 'utf8');
const blocks = shellBlocks(readme, 'A walk through');

let dir: string;
let server: ServerProcess;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'intake-readme-'));
  server = await startServerProcess({ DATABASE_URL: `sqlite:${join(dir, 'intake.db')}`, ADMIN_TOKEN: TOKEN });
}, 60_000);
afterAll(async () => {
  await server?.kill();
  rmSync(dir, { recursive: true, force: true });
});

describe('the README walk-through', () => {
  it('has shell blocks whose every curl fails on an HTTP error (-f)', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(3);
    const curls = blocks.join('\n').match(/\bcurl\b[^\n]*/g) ?? [];
    expect(curls.length).toBeGreaterThan(8);
    for (const line of curls) expect(line, line).toMatch(/\bcurl -f/);
  });

  it('runs as written, in order, against a fresh server: every command exits 0', () => {
    // One shell, so that the variables of a block reach the next; -e stops at the first failing command.
    const script = ['set -euo pipefail', ...blocks].join('\n');
    const result = spawnSync('bash', ['-c', script], {
      cwd: root,
      env: { ...process.env, INTAKE: server.url, TOKEN },
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(result.status, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).toBe(0);
    expect(result.stdout).toContain('"status":"ingested"');
    expect(result.stdout).toContain('"status":"processed"');
    expect(result.stdout).toContain('"rules_matched":1');
    expect(result.stdout).toContain('Tracking event recorded successfully');
  }, 150_000);
});
