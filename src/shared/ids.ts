import { v7 as uuidv7 } from 'uuid';

/** Time-ordered ids (UUIDv7): they index far faster than random ones and sort by creation. */
export type IdGenerator = () => string;

export const uuidV7: IdGenerator = () => uuidv7();

export function sequentialIds(prefix = '00000000-0000-7000-8000-'): IdGenerator {
  let n = 0;
  return () => `${prefix}${(++n).toString(16).padStart(12, '0')}`;
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID_PATTERN.test(value);
}
