import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, rmdirSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { auth, startTestIntake } from '../support/embedded-intake.js';

/** A small tmpfs of our own, so the disk can really fill up; only root may mount one. */
function mountSmallDisk(): { dir: string; unmount(): void } | string {
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root';
  const dir = mkdtempSync(join(tmpdir(), 'intake-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', dir], { stdio: 'ignore' });
  } catch (error) {
    rmdirSync(dir);
    return `cannot mount a tmpfs here: ${(error as Error).message}`;
  }
  return {
    dir,
    unmount() {
      execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
      rmdirSync(dir);
    },
  };
}

/** Writes zeros until the file system refuses: what a neighbour filling the disk looks like. */
function fillDisk(path: string): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(fd);
  }
}

const disk = mountSmallDisk();

describe.skipIf(typeof disk === 'string')(`a full disk${typeof disk === 'string' ? ` (skipped: ${disk})` : ''}`, () => {
  it('answers 503 with Retry-After while full, loses nothing acknowledged, and heals without a restart', async () => {
    if (typeof disk === 'string') return;
    const intake = await startTestIntake({ DATABASE_URL: `sqlite:${join(disk.dir, 'intake.db')}` }, { storage: 'thread' });
    const acknowledged: string[] = [];
    const statuses = new Set<number>();
    const ingest = async (n: number) => {
      const res = await intake.app.inject({
        method: 'POST',
        url: '/ingest',
        headers: { ...auth, 'content-type': 'application/json' },
        payload: JSON.stringify({ partner_id: 'disk', payload: { n, pad: 'x'.repeat(2000) } }),
      });
      statuses.add(res.statusCode);
      if (res.statusCode === 201) acknowledged.push(res.json().id as string);
      else {
        expect(res.statusCode).toBe(503);
        expect(res.headers['retry-after']).toBeDefined();
        expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
      }
      return res.statusCode;
    };
    try {
      for (let i = 0; i < 50; i++) await ingest(i);
      await intake.subscriptions.caughtUp(30_000);
      // A neighbour takes the space; freeing it later gives back at least the ballast's 4 MB, as an
      // operator would, rather than the few pages the growing log left over.
      writeFileSync(join(disk.dir, 'ballast'), Buffer.alloc(4 * 1024 * 1024));
      fillDisk(join(disk.dir, 'filler'));

      let refused = 0;
      for (let i = 0; i < 400 && refused < 20; i++) if ((await ingest(1000 + i)) === 503) refused += 1;
      expect(refused).toBeGreaterThan(0);
      const whileFull = await intake.app.inject({ method: 'GET', url: '/health/ready' });
      expect(whileFull.statusCode).toBe(503);

      rmSync(join(disk.dir, 'filler'));
      rmSync(join(disk.dir, 'ballast'));
      // The same process, with no restart: writes succeed again and every subscriber resumes.
      const deadline = Date.now() + 30_000;
      while ((await ingest(5000)) !== 201 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      for (let i = 0; i < 20; i++) await ingest(6000 + i);
      await intake.subscriptions.caughtUp(60_000);
      for (;;) {
        const ready = await intake.app.inject({ method: 'GET', url: '/health/ready' });
        if (ready.statusCode === 200) break;
        if (Date.now() > deadline + 30_000) throw new Error(`never ready again: ${ready.body}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      await intake.subscriptions.caughtUp(60_000);

      expect(statuses.has(500)).toBe(false);
      for (const id of acknowledged) {
        const view = await intake.app.inject({ method: 'GET', url: `/query/${id}`, headers: auth });
        expect(view.statusCode).toBe(200);
        expect(view.json().status).toBe('processed');
      }
    } finally {
      await intake.close();
      disk.unmount();
    }
  }, 180_000);
});
