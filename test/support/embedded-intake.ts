import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { digestOf } from '../../src/shared/secrets.js';
import { loadConfig, type Config } from '../../src/app/config.js';
import { buildEmbedded, type EmbeddedOptions, type Intake } from '../../src/app/embedded.js';

export const ADMIN_TOKEN = 'test-admin-token';
export const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };

/** An admin request through app.inject(), with a JSON body when there is a payload. */
export const adminCall = (
  intake: Pick<Intake, 'app'>,
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  url: string,
  payload?: unknown,
) =>
  intake.app.inject({
    method,
    url,
    headers: payload === undefined ? auth : { ...auth, 'content-type': 'application/json' },
    ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }),
  });

export interface TestIntake extends Intake {
  readonly dir: string;
  readonly config: Config;
  dispose(): Promise<void>;
}

/** An embedded Intake on a fresh SQLite file in a temporary directory, for app.inject() tests. */
export async function startTestIntake(
  env: Record<string, string> = {},
  /** A `logger` replaces the silent one (to read what Intake logs). */
  options: Partial<Omit<EmbeddedOptions, 'config' | 'adminDigest'>> = {},
  /** Reuse a directory (and its database) to simulate a restart; dispose() then leaves it in place. */
  existingDir?: string,
): Promise<TestIntake> {
  const dir = existingDir ?? mkdtempSync(join(tmpdir(), 'intake-test-'));
  const config = loadConfig({ DATABASE_URL: `sqlite:${join(dir, 'intake.db')}`, ADMIN_TOKEN, LOG_LEVEL: 'silent', ...env });
  const intake = await buildEmbedded({
    config,
    logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    adminDigest: digestOf(ADMIN_TOKEN),
    ...options,
  });
  return {
    ...intake,
    dir,
    config,
    async dispose() {
      await intake.close();
      if (!existingDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
