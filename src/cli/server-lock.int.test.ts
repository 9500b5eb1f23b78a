import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireLock, isHolder, lockFileOf, type ServerLock } from './server-lock.js';

const dirs: string[] = [];
const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const database = () => {
  const dir = mkdtempSync(join(tmpdir(), 'intake-server-lock-'));
  dirs.push(dir);
  return join(dir, 'intake.db');
};

/** Another process that takes the lock and keeps it until killed; resolves once it holds it. */
function holdInAnotherProcess(path: string): Promise<ChildProcess> {
  const script = `
    const { acquireLock, isHolder } = await import(${JSON.stringify(new URL('./server-lock.ts', import.meta.url).href)});
    const lock = acquireLock(process.argv[1], 'serve');
    process.send(isHolder(lock) ? 'refused' : 'held');
    setInterval(() => undefined, 1000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, path], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.once('message', (message) => (message === 'held' ? resolve(child) : reject(new Error(String(message)))));
    child.once('exit', (code) => reject(new Error(`the holder exited with ${code}`)));
  });
}

describe('the SQLite database lock', () => {
  it('names the data directory it cannot use, and why', () => {
    const path = database();
    writeFileSync(join(path, '..', 'not-a-directory'), '');
    const inside = join(path, '..', 'not-a-directory', 'intake.db');
    expect(() => acquireLock(inside, 'serve')).toThrow(/^cannot use the data directory .*not-a-directory: /);
  });

  // Root writes any file, so these cases need another user: a child process run as nobody.
  const takenAsNobody = (path: string) => {
    const script = `
      const { acquireLock, isHolder } = await import(${JSON.stringify(new URL('./server-lock.ts', import.meta.url).href)});
      try { const lock = acquireLock(process.argv[1], 'serve'); process.stdout.write(isHolder(lock) ? 'refused' : 'held'); }
      catch (error) { process.stdout.write(String(error.message)); }`;
    return spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, path], {
      uid: 65534,
      gid: 65534,
      encoding: 'utf8',
      env: { ...process.env, TSX_TSCONFIG_PATH: '', HOME: tmpdir() },
    }).stdout;
  };
  const leftByRoot = () => {
    const path = database();
    (acquireLock(path, 'migrate') as ServerLock).release();
    chmodSync(join(path, '..'), 0o777);
    return path;
  };

  it.skipIf(process.getuid?.() !== 0)(
    'refuses a lock file this user may not write, which SQLite would open read-only and lock nothing with',
    () => {
      expect(takenAsNobody(leftByRoot())).toMatch(/^cannot lock .*intake\.db\.lock: this user may not write it/);
    },
  );

  it.skipIf(process.getuid?.() !== 0)(
    'names the data directory this user may not make files in, not a lock file that is not there (it blamed its owner)',
    () => {
      const path = database();
      chmodSync(join(path, '..'), 0o555);
      expect(takenAsNobody(path)).toMatch(/^cannot use the data directory .*: this user may not make files in it/);
    },
  );

  it.skipIf(process.getuid?.() !== 0)(
    'names a data directory this user may not make files in, where its files are already there and its own',
    () => {
      const path = database();
      const directory = join(path, '..');
      chmodSync(directory, 0o777);
      writeFileSync(path, '');
      writeFileSync(`${path}.lock`, '');
      chownSync(path, 65534, 65534);
      chownSync(`${path}.lock`, 65534, 65534);
      chmodSync(directory, 0o555);
      // SQLite's journal goes beside the lock file: it said only "attempt to write a readonly database".
      expect(takenAsNobody(path)).toMatch(/^cannot use the data directory .*: this user may not make files in it/);
      // Its own lock file without the write bit: no other user to blame.
      chmodSync(directory, 0o777);
      chmodSync(`${path}.lock`, 0o444);
      expect(takenAsNobody(path)).toMatch(/^cannot lock .*intake\.db\.lock: its permissions do not let its owner, this user, write it/);
    },
  );

  it.skipIf(process.getuid?.() !== 0)('names the database file this user may not write, left by a run as another user', () => {
    const path = leftByRoot();
    chmodSync(`${path}.lock`, 0o666);
    writeFileSync(path, '', { mode: 0o644 });
    expect(takenAsNobody(path)).toMatch(/^cannot write .*intake\.db: this user may not write it/);
  });

  it.skipIf(process.getuid?.() !== 0)('says the file system is read-only rather than blame the owner', (context) => {
    const path = database();
    const mountPoint = join(path, '..', 'mounted');
    spawnSync('mkdir', [mountPoint]);
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint]).status !== 0)
      return context.skip('cannot mount a tmpfs here');
    try {
      const inside = join(mountPoint, 'intake.db');
      (acquireLock(inside, 'migrate') as ServerLock).release();
      expect(spawnSync('mount', ['-o', 'remount,ro', mountPoint]).status).toBe(0);
      expect(() => acquireLock(inside, 'serve')).toThrow(
        /^cannot lock .*intake\.db\.lock: the file system holding it is mounted read-only$/,
      );
      // A database copied there without its lock file, or none yet: the lock cannot even be made.
      expect(() => acquireLock(join(mountPoint, 'other.db'), 'serve')).toThrow(
        /^cannot use the data directory .*mounted: the file system holding it is mounted read-only$/,
      );
    } finally {
      spawnSync('umount', [mountPoint]);
    }
  });

  it('is held by one taker at a time, and taken again once released', () => {
    const path = database();
    const first = acquireLock(path, 'serve');
    expect(isHolder(first)).toBe(false);
    const second = acquireLock(path, 'replay');
    expect(second).toEqual({ pid: process.pid, command: 'serve' });
    (first as ServerLock).release();
    const third = acquireLock(path, 'replay');
    expect(isHolder(third)).toBe(false);
    expect(readFileSync(lockFileOf(path), 'utf8')).toBe(`${process.pid} replay\n`);
    (third as ServerLock).release();
  });

  it('goes with its process, however it ends, leaving a pid file that names nobody', async () => {
    const path = database();
    const holder = await holdInAnotherProcess(path);
    expect(acquireLock(path, 'replay')).toEqual({ pid: holder.pid, command: 'serve' });
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
    const taken = acquireLock(path, 'replay');
    expect(isHolder(taken)).toBe(false);
    (taken as ServerLock).release();
  });

  it('refuses while another process holds it, even when the pid file names this very pid (containers on one volume are all pid 1)', async () => {
    const path = database();
    await holdInAnotherProcess(path);
    writeFileSync(lockFileOf(path), `${process.pid} serve\n`);
    expect(isHolder(acquireLock(path, 'serve'))).toBe(true);
  });
});
