import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { digestOf, newSecret } from '../shared/secrets.js';

const DIGEST_FILE = 'admin-token.sha256';

export interface AdminCredential {
  readonly digest: Buffer;
  /** Where the token in force comes from: ADMIN_TOKEN, or the digest file of a generated one. */
  readonly source: 'environment' | 'generated-file';
  /** The digest file (in force or, with ADMIN_TOKEN set, ignored). */
  readonly file: string;
}

/**
 * The admin credential as a digest. With ADMIN_TOKEN unset, the first start generates a token,
 * keeps only its digest in the data directory (mode 0600) and hands the token to `announce` once.
 */
export function resolveAdminCredential(
  adminToken: string | undefined,
  dataDir: string,
  announce: (token: string) => void,
): AdminCredential {
  const file = join(dataDir, DIGEST_FILE);
  if (adminToken) return { digest: digestOf(adminToken), source: 'environment', file };
  try {
    return { digest: Buffer.from(readFileSync(file, 'utf8').trim(), 'hex'), source: 'generated-file', file };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const token = newSecret('intk_admin_');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // 'wx': two processes starting at once must not both mint a token.
  writeFileSync(file, `${digestOf(token).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  announce(token);
  return { digest: digestOf(token), source: 'generated-file', file };
}

/** One line for the start-up log saying which token is in force; never the token itself. */
export function describeAdminCredential(credential: AdminCredential): string {
  return credential.source === 'environment'
    ? `admin token: from the ADMIN_TOKEN environment variable (a generated token's digest in ${credential.file}, if any, is ignored)`
    : `admin token: the generated one whose digest is in ${credential.file} (set ADMIN_TOKEN to use your own)`;
}
