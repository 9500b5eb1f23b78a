import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { redactedUrls, stackDefaults } from '../../scripts/stack-defaults.mjs';

describe('npm run stack defaults', () => {
  it('binds loopback and generates a fresh token when nothing is set', () => {
    const first = stackDefaults({});
    const second = stackDefaults({});
    expect(first.bindHost).toBe('127.0.0.1');
    expect(first.generated).toBe(true);
    expect(first.adminToken).not.toBe('change-me');
    expect(first.adminToken.length).toBeGreaterThanOrEqual(32);
    expect(second.adminToken).not.toBe(first.adminToken);
  });

  it('never prints a password or token of the database or broker URLs', () => {
    expect(redactedUrls('nats://alice:s3cret@127.0.0.1:4222, nats://tok@10.0.0.2:4222,nats://10.0.0.3:4222')).toBe(
      'nats://***@127.0.0.1:4222,nats://***@10.0.0.2:4222,nats://10.0.0.3:4222',
    );
    expect(redactedUrls('mysql://root:pw@db/x')).toBe('mysql://***@db/x');
  });

  it('takes HOST and ADMIN_TOKEN when given', () => {
    expect(stackDefaults({ HOST: '0.0.0.0', ADMIN_TOKEN: 'mine' })).toEqual({ bindHost: '0.0.0.0', adminToken: 'mine', generated: false });
  });
});

describe('docker-compose.yml', () => {
  it('gives the roles no admin token of its own: without ADMIN_TOKEN they refuse to start', () => {
    const compose = readFileSync(new URL('../../docker-compose.yml', import.meta.url), 'utf8');
    const tokens = [...compose.matchAll(/^\s*ADMIN_TOKEN:\s*(.*)$/gm)].map((match) => match[1]);
    expect(tokens.length).toBeGreaterThan(0);
    for (const token of tokens) expect(token).toBe('${ADMIN_TOKEN:-}');
  });
});
