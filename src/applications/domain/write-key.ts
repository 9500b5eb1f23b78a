/** A write key reads `wk_<key id>_<secret>`: the id finds the record, the secret is checked against its digest. */
const WRITE_KEY = /^wk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export function formatWriteKey(keyId: string, secret: string): string {
  return `wk_${keyId}_${secret}`;
}

export function parseWriteKey(token: string): { keyId: string; secret: string } | undefined {
  const match = WRITE_KEY.exec(token);
  return match?.[1] && match[2] ? { keyId: match[1], secret: match[2] } : undefined;
}
