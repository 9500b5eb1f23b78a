import { mkdirSync, readFileSync } from 'node:fs';
import { createFileDurably } from '../shared/durable-file.js';
import { join } from 'node:path';
import { digestOf, newSecret } from '../shared/secrets.js';

const DIGEST_FILE = 'admin-token.sha256';
const SHA256_HEX = /^[0-9a-f]{64}$/i;

export interface AdminCredential {
  readonly digest: Buffer;
  /** Where the token in force comes from: ADMIN_TOKEN, or the digest file of a generated one. */
  readonly source: 'environment' | 'generated-file';
  /** The digest file (in force or, with ADMIN_TOKEN set, ignored). */
  readonly file: string;
  /**
   * For a token generated now: stores its digest and hands the token to `announce`. Called once the
   * server is up, so that a start that fails (a wrong setting, a database that will not open) neither
   * keeps a digest nor spends the one showing of a token nobody could use.
   */
  readonly keep?: () => void;
}

/**
 * The admin credential as a digest. With ADMIN_TOKEN unset, the first start generates a token; once it
 * is up (`keep`), only the token's digest is kept in the data directory (mode 0600) and the token is
 * handed to `announce`, once.
 */
export function resolveAdminCredential(
  adminToken: string | undefined,
  dataDir: string,
  announce: (token: string) => void,
): AdminCredential {
  const file = join(dataDir, DIGEST_FILE);
  if (adminToken) return { digest: digestOf(adminToken), source: 'environment', file };
  let stored: string | undefined;
  try {
    stored = readFileSync(file, 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (stored !== undefined) {
    // An empty or damaged file (a start killed while writing it) would read as a digest no token
    // matches: the server would start and refuse every admin request without saying why.
    if (!SHA256_HEX.test(stored)) {
      throw new Error(
        `${file} does not hold the SHA-256 digest of an admin token; set ADMIN_TOKEN, or delete the file to have a new token generated`,
      );
    }
    return { digest: Buffer.from(stored, 'hex'), source: 'generated-file', file };
  }
  const token = newSecret('intk_admin_');
  const keep = () => {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    try {
      // Two processes starting at once must not both mint a token; a crash must not leave half of one.
      createFileDurably(file, `${digestOf(token).toString('hex')}\n`);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      throw new Error(`another Intake generated an admin token in ${file} while this one started; start again to use it`);
    }
    announce(token);
  };
  return { digest: digestOf(token), source: 'generated-file', file, keep };
}

/** One line for the start-up log saying which token is in force; never the token itself. */
export function describeAdminCredential(credential: AdminCredential): string {
  return credential.source === 'environment'
    ? `admin token: from the ADMIN_TOKEN environment variable (a generated token's digest in ${credential.file}, if any, is ignored)`
    : credential.keep
      ? `admin token: a new one, shown once the server is up; its digest will be kept in ${credential.file} (set ADMIN_TOKEN to use your own)`
      : `admin token: the generated one whose digest is in ${credential.file} (set ADMIN_TOKEN to use your own)`;
}
