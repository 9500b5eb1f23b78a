import { randomFillSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isUuid, uuidV7Generator } from './ids.js';

const fixedRandom = (byte: number) => (bytes: Buffer) => bytes.fill(byte);
const millisOf = (id: string) => parseInt(id.replaceAll('-', '').slice(0, 12), 16);
/** The 32-bit counter of bytes 6 to 10, around the version and variant bits. */
function counterOf(id: string): number {
  const b = Buffer.from(id.replaceAll('-', ''), 'hex');
  const byte = (i: number) => b[i] as number;
  return (((byte(6) & 0x0f) << 28) | (byte(7) << 20) | ((byte(8) & 0x3f) << 14) | (byte(9) << 6) | (byte(10) >>> 2)) >>> 0;
}

describe('uuidV7Generator', () => {
  it('writes version 7, the RFC variant and the time in milliseconds', () => {
    const id = uuidV7Generator(() => 0x0190_1234_5678)();
    expect(isUuid(id)).toBe(true);
    expect(id[14]).toBe('7');
    expect(['8', '9', 'a', 'b']).toContain(id[19]);
    expect(millisOf(id)).toBe(0x0190_1234_5678);
    expect(id.startsWith('01901234-5678-7')).toBe(true);
  });

  it('gives ids in strictly increasing order within one millisecond and across them', () => {
    let ms = 1_700_000_000_000;
    let calls = 0;
    const next = uuidV7Generator(() => (++calls % 1000 === 0 ? ++ms : ms));
    const ids = Array.from({ length: 20_000 }, next);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });

  it('stays increasing when the clock steps back', () => {
    const times = [5_000, 5_000, 4_000, 3_000, 5_000, 6_000];
    const next = uuidV7Generator(() => times.shift() ?? 6_000);
    const ids = Array.from({ length: 6 }, next);
    expect([...ids].sort()).toEqual(ids);
    expect(millisOf(ids[3] as string)).toBe(5_000);
    expect(millisOf(ids[5] as string)).toBe(6_000);
  });

  it('keeps the order where the counter passes 2^31', () => {
    // All-ones random bytes seed the counter at 2^31 - 1; the next id's counter is 2^31, negative as an int32.
    const next = uuidV7Generator(() => 9_000, fixedRandom(0xff));
    const ids = [next(), next(), next()];
    expect(ids.map(counterOf)).toEqual([0x7fff_ffff, 0x8000_0000, 0x8000_0001]);
    expect([...ids].sort()).toEqual(ids);
    expect(ids.map(millisOf)).toEqual([9_000, 9_000, 9_000]);
  });

  it('draws fresh random bits for every id', () => {
    let filled = 0;
    const next = uuidV7Generator(
      () => 1_000,
      (bytes) => {
        filled += 1;
        randomFillSync(bytes);
      },
    );
    const tails = new Set(Array.from({ length: 2_000 }, () => next().slice(24)));
    expect(tails.size).toBe(2_000);
    expect(filled).toBeGreaterThan(1);
  });
});
