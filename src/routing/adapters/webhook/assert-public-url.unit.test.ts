import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../shared/errors.js';
import { assertPublicUrl } from './assert-public-url.js';

function problemOf(url: string, allowedHosts: readonly string[] = []): ValidationError | undefined {
  try {
    assertPublicUrl(url, allowedHosts);
    return undefined;
  } catch (error) {
    if (error instanceof ValidationError) return error;
    throw error;
  }
}

describe('assertPublicUrl', () => {
  it.each([
    'https://hooks.example.com/intake',
    'http://hooks.example.com:8080/a?b=c',
    'https://93.184.215.14/x',
    'https://[2606:4700::1111]/',
  ])('accepts %s', (url) => {
    expect(problemOf(url)).toBeUndefined();
  });

  it.each([
    ['/relative/path', 'absolute'],
    ['hooks.example.com/x', 'absolute'],
    ['ftp://hooks.example.com/', 'scheme'],
    ['file:///etc/passwd', 'scheme'],
    ['https://user:pass@hooks.example.com/', 'credentials'],
    [`https://hooks.example.com/${'a'.repeat(2048)}`, '2048'],
    ['http://localhost:3000/', 'localhost'],
    ['http://api.localhost/', 'api.localhost'],
    ['http://127.0.0.1/', '127.0.0.1'],
    ['http://2130706433/', '127.0.0.1'], // the URL parser reads decimal IPv4 hosts
    ['http://0x7f.1/', '127.0.0.1'],
    ['http://10.0.0.1/', '10.0.0.1'],
    ['http://169.254.169.254/latest/meta-data', '169.254.169.254'],
    ['http://[::1]:8080/', '::1'],
    ['http://[::ffff:127.0.0.1]/', '::ffff:7f00:1'],
    ['http://[fd00::1]/', 'fd00::1'],
    ['http://0.0.0.0/', '0.0.0.0'],
  ])('refuses %s with a reason mentioning %s', (url, mention) => {
    const problem = problemOf(url);

    expect(problem?.code).toBe('routing.invalid-destination');
    expect(problem?.message).toContain(mention);
    expect(problem?.violations[0]?.path).toBe('destination_config.url');
  });

  it('accepts private destinations the operator allowed', () => {
    expect(problemOf('http://127.0.0.1:8080/', ['127.0.0.0/8'])).toBeUndefined();
    expect(problemOf('http://localhost:8080/', ['localhost'])).toBeUndefined();
    expect(problemOf('http://[::1]/', ['::1'])).toBeUndefined();
    expect(problemOf('http://10.0.0.1/', ['127.0.0.0/8'])).toBeDefined();
  });
});
