import { describe, expect, it } from 'vitest';
import { progressReporter } from './progress.js';

const sink = (isTTY: boolean) => {
  const written: string[] = [];
  return { isTTY, written, write: (text: string) => written.push(text) > 0 } as unknown as NodeJS.WritableStream & {
    isTTY: boolean;
    written: string[];
  };
};

describe('import progress', () => {
  it('draws a bar with count, rate and ETA in place on a terminal', () => {
    let now = 0;
    const out = sink(true);
    const counts = { read: 0, accepted: 0, duplicate: 0, rejected: 0 };
    let bytes = 0;
    const progress = progressReporter(out, { bytesRead: () => bytes, totalBytes: 1000 }, counts, () => now);
    Object.assign(counts, { read: 500, accepted: 490, rejected: 10 });
    bytes = 250;
    now = 10_000;
    progress.update();
    expect(out.written).toEqual([
      '\r\u001b[2K[######------------------] 25% 500 read, 490 accepted, 0 duplicate, 10 rejected, 50/s, ETA 0:30',
    ]);
  });

  it('prints plain lines, at most every two seconds, elsewhere', () => {
    let now = 0;
    const out = sink(false);
    const counts = { read: 10, accepted: 10, duplicate: 0, rejected: 0 };
    const progress = progressReporter(out, { bytesRead: () => 0, totalBytes: undefined }, counts, () => now);
    now = 1000;
    progress.update();
    now = 2500;
    progress.update();
    now = 3000;
    progress.update();
    progress.done();
    expect(out.written).toEqual(['10 read, 10 accepted, 0 duplicate, 0 rejected, 4/s\n']);
  });

  it('writes every count with the same thousands separators', () => {
    let now = 0;
    const out = sink(false);
    const counts = { read: 3101, accepted: 2000, duplicate: 1100, rejected: 1001 };
    const progress = progressReporter(out, { bytesRead: () => 0, totalBytes: undefined }, counts, () => now);
    now = 2500;
    progress.update();
    expect(out.written).toEqual(['3,101 read, 2,000 accepted, 1,100 duplicate, 1,001 rejected, 1,240/s\n']);
  });
});
