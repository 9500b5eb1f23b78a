/**
 * Orders two strings as the databases order names (by the bytes of their UTF-8, decision 0028), not by
 * UTF-16 code units as `<` does: the two disagree on characters above U+FFFF against U+E000–U+FFFF,
 * and an answer sorted here must agree with one sorted in SQL.
 */
export function compareBytes(a: string, b: string): number {
  return a === b ? 0 : Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
