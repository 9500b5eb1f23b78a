import { randomFillSync } from 'node:crypto';

/** Time-ordered ids (UUIDv7): they index far faster than random ones and sort by creation. */
export type IdGenerator = () => string;

// Random bytes are drawn a few kilobytes at a time: one call into the CSPRNG per 800 ids, not one per id.
const RANDOM_POOL_BYTES = 8000;
const RANDOM_BYTES_PER_ID = 10;
const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');
// Where each of the 16 bytes goes in the 36 characters of the text form.
const TEXT_OFFSETS = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/**
 * UUIDv7 ids (RFC 9562): 48 bits of Unix milliseconds, then a 32-bit counter that starts at a random
 * value each millisecond and counts up within it, then random bits. Ids of one generator are strictly
 * increasing, also when the clock stands still or steps back. Every event, item and delivery takes
 * one; each id costs one string and no other allocation.
 */
export function uuidV7Generator(now: () => number = Date.now, fillRandom: (bytes: Buffer) => void = randomFillSync): IdGenerator {
  const pool = Buffer.allocUnsafe(RANDOM_POOL_BYTES);
  let next = pool.length;
  const bytes = new Uint8Array(16);
  const text = Buffer.from('00000000-0000-0000-0000-000000000000', 'latin1');
  let lastMs = -Infinity;
  let counter = 0;
  return () => {
    if (next + RANDOM_BYTES_PER_ID > pool.length) {
      fillRandom(pool);
      next = 0;
    }
    const r = next;
    next += RANDOM_BYTES_PER_ID;
    const ms = now();
    if (ms > lastMs) {
      lastMs = ms;
      // 31 random bits: at least 2^31 ids fit in the millisecond before the counter wraps.
      counter =
        (((pool[r] as number) & 0x7f) << 24) | ((pool[r + 1] as number) << 16) | ((pool[r + 2] as number) << 8) | (pool[r + 3] as number);
    } else {
      counter = (counter + 1) | 0;
      if (counter === 0) lastMs += 1; // wrapped: borrow the next millisecond
    }
    bytes[0] = (lastMs / 0x10000000000) & 0xff;
    bytes[1] = (lastMs / 0x100000000) & 0xff;
    bytes[2] = (lastMs / 0x1000000) & 0xff;
    bytes[3] = (lastMs / 0x10000) & 0xff;
    bytes[4] = (lastMs / 0x100) & 0xff;
    bytes[5] = lastMs & 0xff;
    bytes[6] = 0x70 | ((counter >>> 28) & 0x0f);
    bytes[7] = (counter >>> 20) & 0xff;
    bytes[8] = 0x80 | ((counter >>> 14) & 0x3f);
    bytes[9] = (counter >>> 6) & 0xff;
    bytes[10] = ((counter << 2) & 0xfc) | ((pool[r + 4] as number) & 0x03);
    for (let i = 11; i < 16; i++) bytes[i] = pool[r + i - 6] as number;
    for (let i = 0; i < 16; i++) {
      const byte = bytes[i] as number;
      const at = TEXT_OFFSETS[i] as number;
      text[at] = HEX_DIGITS[byte >>> 4] as number;
      text[at + 1] = HEX_DIGITS[byte & 0x0f] as number;
    }
    return text.toString('latin1');
  };
}

export const uuidV7: IdGenerator = uuidV7Generator();

export function sequentialIds(prefix = '00000000-0000-7000-8000-'): IdGenerator {
  let n = 0;
  return () => `${prefix}${(++n).toString(16).padStart(12, '0')}`;
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** When a UUIDv7 was made (its first 48 bits, Unix milliseconds); undefined for any other id. */
export function uuidV7Time(id: string): number | undefined {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i.test(id)) return undefined;
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

export function isUuid(value: string): boolean {
  return UUID_PATTERN.test(value);
}
