import { spawnSync } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { logDestination, MAX_BUFFERED_LOG_BYTES } from './log-destination.js';

type Done = (error: NodeJS.ErrnoException | null, written: number) => void;
const failure = (code: string) => Object.assign(new Error(code), { code });

describe('the log destination', () => {
  it('writes lines in order, drops and counts the ones the file refuses, and goes on', async () => {
    const written: string[] = [];
    const answers = [null, failure('ENOSPC'), null];
    const destination = logDestination(1, (_fd, bytes, done: Done) => {
      const answer = answers.shift() ?? null;
      if (!answer) written.push(bytes.toString());
      setImmediate(() => done(answer, answer ? 0 : bytes.length));
    });
    for (const line of ['a\n', 'b\n', 'c\n']) destination.write(line);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(written).toEqual(['a\n', 'c\n']);
    expect(destination.dropped).toBe(1);
  });

  it('writes a line a busy pipe refused (EAGAIN) again, in its place', async () => {
    const written: string[] = [];
    let busy = 2;
    const destination = logDestination(1, (_fd, bytes, done: Done) => {
      if (busy-- > 0) return setImmediate(() => done(failure('EAGAIN'), 0));
      written.push(bytes.toString());
      setImmediate(() => done(null, bytes.length));
    });
    destination.write('first\n');
    destination.write('second\n');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(written).toEqual(['first\n', 'second\n']);
    expect(destination.dropped).toBe(0);
  });

  it('writes the rest of a line a pipe took only part of, before the next line', async () => {
    let out = '';
    const destination = logDestination(1, (_fd, bytes, done: Done) => {
      // A non-blocking pipe takes at most 4 KB at a time.
      const taken = Math.min(bytes.length, 4096);
      out += bytes.subarray(0, taken).toString();
      setImmediate(() => done(null, taken));
    });
    const long = `${JSON.stringify({ msg: 'é'.repeat(10_000) })}\n`;
    destination.write(long);
    destination.write('{"next":true}\n');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(out).toBe(`${long}{"next":true}\n`);
  });

  it('holds at most MAX_BUFFERED_LOG_BYTES while the file takes nothing, dropping the rest', () => {
    const destination = logDestination(1, () => undefined);
    const line = `${'x'.repeat(1023)}\n`;
    for (let i = 0; i < MAX_BUFFERED_LOG_BYTES / 1024 + 10; i++) destination.write(line);
    expect(destination.dropped).toBe(10);
  });

  it.skipIf(!existsSync('/dev/full'))('keeps a process that logs to a full disk running, and lets it end', () => {
    const script = [
      "const { createLogger } = await import('./src/app/logger.ts');",
      "const logger = createLogger('info');",
      "for (let i = 0; i < 2000; i++) logger.info({ i }, 'a line the disk cannot take');",
      'await new Promise((resolve) => setTimeout(resolve, 300));',
      "process.stderr.write('still running\\n');",
    ].join('\n');
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', openSync('/dev/full', 'w'), 'pipe'],
      timeout: 30_000,
      encoding: 'utf8',
    });
    expect(child.stderr).toContain('still running');
    expect(child.status).toBe(0);
  });
});
