import { describe, expect, it } from 'vitest';
import { ConfigError } from '../app/config.js';
import { assertTokenFitsExposure } from './serve.js';

describe('a short ADMIN_TOKEN on an interface other machines reach', () => {
  const short = { adminToken: 'choose-a-secret', host: '0.0.0.0' };

  it('is refused, and a single process is told it may leave the token unset', () => {
    expect(() => assertTokenFitsExposure({ ...short, distributed: false })).toThrow(ConfigError);
    expect(() => assertTokenFitsExposure({ ...short, distributed: false })).toThrow(/leave ADMIN_TOKEN unset/);
  });

  it('is refused in the distributed mode without suggesting to leave it unset, which that mode refuses too', () => {
    let message = '';
    try {
      assertTokenFitsExposure({ ...short, distributed: true });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('ADMIN_TOKEN has 15 characters and HOST 0.0.0.0 is reachable from other machines');
    expect(message).toContain('use at least 16');
    expect(message).not.toContain('unset');
  });

  it('is taken on loopback, and a token of 16 characters anywhere', () => {
    expect(() => assertTokenFitsExposure({ ...short, host: '127.0.0.1', distributed: true })).not.toThrow();
    expect(() => assertTokenFitsExposure({ adminToken: 'x'.repeat(16), host: '0.0.0.0', distributed: true })).not.toThrow();
  });
});
