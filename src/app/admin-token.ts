import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { digestOf, newSecret } from '../shared/secrets.js';

const DIGEST_FILE = 'admin-token.sha256';

/**
 * The admin credential as a digest. With ADMIN_TOKEN unset, the first start generates a token,
 * keeps only its digest in the data directory (mode 0600) and hands the token to `announce` once.
 */
export function resolveAdminDigest(adminToken: string | undefined, dataDir: string, announce: (token: string) => void): Buffer {
  if (adminToken) return digestOf(adminToken);
  const file = join(dataDir, DIGEST_FILE);
  try {
    return Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const token = newSecret('intk_admin_');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // 'wx': two processes starting at once must not both mint a token.
  writeFileSync(file, `${digestOf(token).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  announce(token);
  return digestOf(token);
}
