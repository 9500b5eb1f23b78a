import { describe, expect, it } from 'vitest';
import { originAllowed, parseOrigins } from './source-settings.js';

const codeOf = (value: unknown) => {
  try {
    parseOrigins(value);
    return 'accepted';
  } catch (error) {
    return (error as { code: string }).code;
  }
};

describe('allowed origins', () => {
  it('keeps an origin as browsers send it, however it was written', () => {
    expect(parseOrigins(['https://Shop.example:443', 'https://shop.example/', 'http://a.example:8080', 'https://bücher.example'])).toEqual([
      'https://shop.example',
      'https://shop.example',
      'http://a.example:8080',
      'https://xn--bcher-kva.example',
    ]);
    expect(parseOrigins(['https://*.Shop.example:443', 'http://*.a.example:8080'])).toEqual([
      'https://*.shop.example',
      'http://*.a.example:8080',
    ]);
  });

  it('refuses what no browser sends as an origin, and wildcards other than a leading *.', () => {
    for (const bad of [
      'https://shop.example/path',
      'https://user@shop.example',
      'https://shop.example?x',
      'ftp://shop.example',
      'shop.example',
      'https://*shop.example',
      'https://a.*.example',
      'https://*.*.example',
      'https://*.com',
      'https://*.127.0.0.1',
      'https://*.[::1]',
      'https://*.shop.example.',
      '*',
    ])
      expect(codeOf([bad])).toBe('analytics.invalid-origins');
  });

  it('lets a *. entry allow the subdomains of its host on its scheme and port, not the host itself', () => {
    const allowed = parseOrigins(['https://*.shop.example', 'https://blog.example']) ?? [];
    expect(originAllowed(allowed, 'https://www.shop.example')).toBe(true);
    expect(originAllowed(allowed, 'https://a.b.shop.example')).toBe(true);
    expect(originAllowed(allowed, 'https://blog.example')).toBe(true);
    expect(originAllowed(allowed, 'https://shop.example')).toBe(false);
    expect(originAllowed(allowed, 'http://www.shop.example')).toBe(false);
    expect(originAllowed(allowed, 'https://www.shop.example:8443')).toBe(false);
    expect(originAllowed(allowed, 'https://evilshop.example')).toBe(false);
    expect(originAllowed(allowed, 'https://www.shop.example.evil.example')).toBe(false);
    expect(originAllowed(allowed, 'null')).toBe(false);
    expect(originAllowed(allowed, 'https://*.shop.example')).toBe(false);
  });
});
