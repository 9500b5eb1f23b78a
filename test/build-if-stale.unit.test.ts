import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script without types
import { isStale } from '../scripts/build-if-stale.mjs';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function project(): string {
  const root = mkdtempSync(join(tmpdir(), 'intake-stale-'));
  dirs.push(root);
  mkdirSync(join(root, 'src', 'app'), { recursive: true });
  writeFileSync(join(root, 'src', 'app', 'main.ts'), 'export {};');
  writeFileSync(join(root, 'package.json'), '{}');
  return root;
}

function build(root: string, at: Date) {
  mkdirSync(join(root, 'dist'), { recursive: true });
  mkdirSync(join(root, 'public', 'vendor'), { recursive: true });
  for (const file of [join(root, 'dist', '.tsbuildinfo'), join(root, 'public', 'vendor', 'redoc.standalone.js')]) {
    writeFileSync(file, '');
    utimesSync(file, at, at);
  }
}

const touch = (file: string, at: Date) => utimesSync(file, at, at);

describe('npm start’s build check', () => {
  it('builds when nothing was built yet', () => {
    expect(isStale(project())).toBe(true);
  });

  it('skips the build when every source is older than the build, and builds again after an edit', () => {
    const root = project();
    const before = new Date('2026-12-01T10:00:00Z');
    for (const file of ['src/app/main.ts', 'src/app', 'src', 'package.json']) touch(join(root, file), before);
    build(root, new Date('2026-12-01T11:00:00Z'));
    expect(isStale(root)).toBe(false);
    touch(join(root, 'src', 'app', 'main.ts'), new Date('2026-12-01T12:00:00Z'));
    expect(isStale(root)).toBe(true);
  });

  it('builds when the vendored ReDoc bundle is missing', () => {
    const root = project();
    const before = new Date('2026-12-01T10:00:00Z');
    for (const file of ['src/app/main.ts', 'src/app', 'src', 'package.json']) touch(join(root, file), before);
    build(root, new Date('2026-12-01T11:00:00Z'));
    rmSync(join(root, 'public', 'vendor'), { recursive: true });
    expect(isStale(root)).toBe(true);
  });
});
