import { describe, expect, it } from 'vitest';
import { ConfigError } from '../app/config.js';
import { failureMessage } from './failure-message.js';

const env = { DATABASE_URL: 'sqlite:/srv/intake/intake.db', ADMIN_TOKEN: 'abcdefabcdefabcdefabcdef' };

describe('the message of a failed command', () => {
  it('names the database whose disk is full, which SQLite does not', () => {
    expect(failureMessage(new Error('database or disk is full'), env)).toBe(
      'database or disk is full: the file system holding /srv/intake/intake.db has no space left; free some there, then start again',
    );
  });

  it('names the file a full disk refused, rather than the database', () => {
    const refused = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', path: '/data/secret-key' });
    expect(failureMessage(refused, env)).toBe(
      'ENOSPC: no space left on device, write: the file system holding /data/secret-key has no space left; free some there, then start again',
    );
    expect(failureMessage(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }), env)).toMatch(
      /a disk Intake writes to \(DATA_DIR, the database\) has no space left$/,
    );
  });

  it('says to raise the limit of open files when a thread cannot read its modules', () => {
    const emfile = Object.assign(new Error("EMFILE: too many open files, open '/app/node_modules/prom-client/index.js'"), {
      code: 'EMFILE',
    });
    expect(failureMessage(emfile, env)).toMatch(
      /^EMFILE: too many open files, .*: .*raise the limit of open files, ulimit -n 1024 or more$/,
    );
  });

  it('leaves other failures as they are, and says which are configuration errors', () => {
    expect(failureMessage(new Error('port 8000 is taken'), env)).toBe('port 8000 is taken');
    expect(failureMessage(new ConfigError('PORT must be a number'), env)).toBe('configuration error: PORT must be a number');
    expect(failureMessage(new Error('database or disk is full'), { DATABASE_URL: 'postgres://db/intake' })).toMatch(
      /a disk Intake writes to/,
    );
  });
});
