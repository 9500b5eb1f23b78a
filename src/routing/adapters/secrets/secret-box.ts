import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { createFileDurably } from '../../../shared/durable-file.js';
import { join } from 'node:path';
import { SECRET_REFERENCE_PREFIX } from '../../domain/destination-secrets.js';

/** Encrypts secrets that must be used in clear later (webhook signing secrets): AES-256-GCM, bound to their owner's id. */
export interface SecretBox {
  seal(ownerId: string, plaintext: string): string;
  /** Opens a sealed value; a value stored before encryption existed is returned as it is. */
  open(ownerId: string, stored: string): string;
  isSealed(stored: string): boolean;
  /** Names the key without revealing it: equal for equal keys, so processes can tell whether they share one. */
  fingerprint(): string;
}

/** A new reference for a sealed destination credential: unguessable, so a rule cannot name another's by chance. */
export const newSecretReference = () => `${SECRET_REFERENCE_PREFIX}${randomBytes(16).toString('hex')}`;

/** How a sealed value begins: values stored in clear before sealing existed do not. */
export const SEALED_PREFIX = 'enc:v1:';
const KEY_FILE = 'secret-key';

/** Where a process without INTAKE_SECRET_KEY keeps the key it generated. */
export const generatedKeyFile = (dataDir: string) => join(dataDir, KEY_FILE);

export function secretBox(key: Buffer): SecretBox {
  if (key.length !== 32) throw new Error('a secret box needs a 32-byte key');
  return {
    seal(ownerId, plaintext) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      // The owner's id as associated data: a sealed value copied to another row does not open there.
      cipher.setAAD(Buffer.from(ownerId, 'utf8'));
      const sealed = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return `${SEALED_PREFIX}${iv.toString('base64url')}:${cipher.getAuthTag().toString('base64url')}:${sealed.toString('base64url')}`;
    },
    open(ownerId, stored) {
      if (!stored.startsWith(SEALED_PREFIX)) return stored;
      const [iv, tag, sealed] = stored.slice(SEALED_PREFIX.length).split(':');
      if (iv === undefined || tag === undefined || sealed === undefined) throw new Error('a sealed secret is malformed');
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(ownerId, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      try {
        return Buffer.concat([decipher.update(Buffer.from(sealed, 'base64url')), decipher.final()]).toString('utf8');
      } catch {
        throw new Error('a sealed secret does not open with this key (was INTAKE_SECRET_KEY changed?)');
      }
    },
    isSealed: (stored) => stored.startsWith(SEALED_PREFIX),
    fingerprint: () => createHmac('sha256', key).update('intake secret key fingerprint').digest('hex'),
  };
}

/**
 * The key that seals secrets at rest: derived from INTAKE_SECRET_KEY when set; otherwise generated
 * once into the data directory (mode 0600), as the admin token is. Replicas that share a database
 * must share the key, so the distributed mode should set INTAKE_SECRET_KEY.
 */
export function resolveSecretKey(
  fromEnvironment: string | undefined,
  dataDir: string,
  /** Told the file it generated, for a start that then finds the database sealed with another key. */
  onGenerated?: (file: string) => void,
): Buffer {
  if (fromEnvironment !== undefined && fromEnvironment !== '') {
    if (fromEnvironment.length < 16) throw new Error('INTAKE_SECRET_KEY must be at least 16 characters');
    return Buffer.from(hkdfSync('sha256', fromEnvironment, 'intake', 'webhook-signing-secrets', 32));
  }
  const file = generatedKeyFile(dataDir);
  const read = () => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw error;
      // A bare "EACCES: permission denied" said neither what the file is nor what to do.
      throw new Error(
        `cannot read ${file} (${code ?? (error as Error).message}), the key this database's secrets are sealed with: ` +
          'run Intake as the user that owns the data directory, or give the file back to it (mode 0600)',
        { cause: error },
      );
    }
    // A damaged file would otherwise be "a secret box needs a 32-byte key", naming neither file nor fix.
    if (!/^[0-9a-f]{64}$/i.test(text))
      throw new Error(
        `${file} does not hold a 32-byte key in hex: restore it from a backup, or set INTAKE_SECRET_KEY and adopt it (intake secret-key adopt)`,
      );
    return Buffer.from(text, 'hex');
  };
  try {
    return read();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  try {
    // Two processes starting at once must not both mint a key; a crash must not leave half of one.
    createFileDurably(file, `${key.toString('hex')}\n`);
    onGenerated?.(file);
    return key;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return read();
    throw error;
  }
}
