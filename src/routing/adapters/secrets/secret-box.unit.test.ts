import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveSecretKey, secretBox } from './secret-box.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'intake-key-'));
  dirs.push(dir);
  return dir;
};

describe('secret box', () => {
  const box = secretBox(resolveSecretKey('a key of at least sixteen characters', '/nonexistent'));

  it('seals so the secret is not readable, and opens it again', () => {
    const sealed = box.seal('rule-1', 'whsec_c2VjcmV0');
    expect(sealed).toMatch(/^enc:v1:/);
    expect(sealed).not.toContain('whsec_');
    expect(box.seal('rule-1', 'whsec_c2VjcmV0')).not.toBe(sealed);
    expect(box.open('rule-1', sealed)).toBe('whsec_c2VjcmV0');
  });

  it('binds a sealed value to its owner', () => {
    expect(() => box.open('rule-2', box.seal('rule-1', 'whsec_x'))).toThrow(/does not open/);
  });

  it('does not open with another key, and says why without the secret', () => {
    const other = secretBox(resolveSecretKey('another key of sixteen characters', '/nonexistent'));
    expect(() => other.open('rule-1', box.seal('rule-1', 'whsec_x'))).toThrow(/INTAKE_SECRET_KEY/);
  });

  it('opens a value stored in clear before sealing existed as it is', () => {
    expect(box.open('rule-1', 'whsec_legacy')).toBe('whsec_legacy');
    expect(box.isSealed('whsec_legacy')).toBe(false);
  });
});

describe('the secret key', () => {
  it('is generated once into the data directory, readable only by its owner', () => {
    const dir = tempDir();
    const first = resolveSecretKey(undefined, join(dir, 'data'));
    expect(first).toHaveLength(32);
    expect(statSync(join(dir, 'data', 'secret-key')).mode & 0o777).toBe(0o600);
    expect(resolveSecretKey(undefined, join(dir, 'data')).equals(first)).toBe(true);
  });

  it('comes from INTAKE_SECRET_KEY when set, and writes nothing', () => {
    const dir = tempDir();
    const key = resolveSecretKey('a key of at least sixteen characters', dir);
    expect(key.equals(resolveSecretKey('a key of at least sixteen characters', tempDir()))).toBe(true);
    expect(() => statSync(join(dir, 'secret-key'))).toThrow();
    expect(() => resolveSecretKey('short', dir)).toThrow(/16/);
  });

  it('names a key file it cannot read and what to do, instead of a bare error code', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'secret-key'));
    expect(() => resolveSecretKey(undefined, dir)).toThrow(
      /cannot read .*secret-key \(EISDIR\), the key this database's secrets are sealed with: run Intake as the user/,
    );
  });

  it('names a damaged key file and how to recover, instead of failing on its length', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'secret-key'), 'garbage\n');
    expect(() => resolveSecretKey(undefined, dir)).toThrow(
      /secret-key does not hold a 32-byte key in hex: restore it .*\(intake secret-key adopt\)/,
    );
  });
});
