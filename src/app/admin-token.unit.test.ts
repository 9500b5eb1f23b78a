import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { secretMatches } from '../shared/secrets.js';
import { describeAdminCredential, resolveAdminCredential } from './admin-token.js';

const dirs: string[] = [];
const dataDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'intake-admin-token-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('the generated admin token', () => {
  it('is announced once and found again by its digest', () => {
    const dir = dataDir();
    const announced: string[] = [];
    const first = resolveAdminCredential(undefined, dir, (token) => announced.push(token));
    first.keep?.();
    const again = resolveAdminCredential(undefined, dir, (token) => announced.push(token));
    expect(again.keep).toBeUndefined();
    expect(announced).toHaveLength(1);
    expect(secretMatches(announced[0] ?? '', again.digest)).toBe(true);
    expect(again.digest).toEqual(first.digest);
  });

  it('is said to be new at the first start, whose digest file does not exist yet, and found in its file after', () => {
    const dir = dataDir();
    const first = resolveAdminCredential(undefined, dir, () => undefined);
    expect(describeAdminCredential(first)).toMatch(/^admin token: a new one, shown once the server is up; its digest will be kept in /);
    first.keep?.();
    expect(describeAdminCredential(resolveAdminCredential(undefined, dir, () => undefined))).toMatch(
      /^admin token: the generated one whose digest is in /,
    );
  });

  it('is neither kept nor shown until the server is up: a start that fails spends no token', () => {
    const dir = dataDir();
    const announced: string[] = [];
    const failed = resolveAdminCredential(undefined, dir, (token) => announced.push(token));
    expect(announced).toEqual([]);
    expect(() => readFileSync(join(dir, 'admin-token.sha256'))).toThrow(/ENOENT/);
    const next = resolveAdminCredential(undefined, dir, (token) => announced.push(token));
    next.keep?.();
    expect(announced).toHaveLength(1);
    expect(secretMatches(announced[0] ?? '', next.digest)).toBe(true);
    expect(failed.digest).not.toEqual(next.digest);
  });

  it('refuses to start on an empty or damaged digest file instead of refusing every token', () => {
    for (const content of ['', 'not hex at all\n', 'abcd\n']) {
      const dir = dataDir();
      writeFileSync(join(dir, 'admin-token.sha256'), content);
      expect(() => resolveAdminCredential(undefined, dir, () => undefined)).toThrow(/does not hold the SHA-256 digest.*ADMIN_TOKEN/);
      expect(readFileSync(join(dir, 'admin-token.sha256'), 'utf8')).toBe(content);
      // ADMIN_TOKEN still starts it.
      expect(resolveAdminCredential('a-token-of-my-own', dir, () => undefined).source).toBe('environment');
    }
  });
});
