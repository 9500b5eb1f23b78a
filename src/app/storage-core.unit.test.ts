import type { Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { reportLag } from './storage-core.js';

describe('the subscribers’ lag report', () => {
  it('says it cannot report while the database is unreachable, rather than reject with nobody to catch it', async () => {
    const warned: string[] = [];
    const logger = { info: () => undefined, warn: (_: object, message: string) => void warned.push(message) } as unknown as Pick<
      Logger,
      'info' | 'warn'
    >;
    const unreachable = { status: () => Promise.reject(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })) };
    await expect(reportLag(unreachable, logger)).resolves.toBeUndefined();
    expect(warned).toEqual(["cannot report the subscribers' lag now; readiness says why"]);
  });
});
