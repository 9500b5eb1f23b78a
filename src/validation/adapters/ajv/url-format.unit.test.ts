import formats from 'ajv-formats/dist/formats.js';
import { describe, expect, it } from 'vitest';
import { linearUrlFormat } from './url-format.js';

// The expression ajv-formats checks `url` with, which linearUrlFormat replaces.
const reference = formats.fullFormats.url as RegExp;

const PIECES = [
  ...['http://', 'HTTPS://', 'ftp://', 'httpſ://', 'http:/', 'mailto:'],
  ...['a', 'Z', 'com', 'x-y', 'é', 'ſ', '\u212a', '😀', '\ud800', '\u00a0', '\u3000', ' ', '\t'],
  ...['0', '1', '9', '10', '127', '172', '16', '31', '32', '169', '254', '192', '168', '223', '224', '255', '256', '01'],
  ...['.', '.', '-', '--', '@', '@', ':', ':', '/', '/', '?', '#', '80', '65535', '123456'],
];

/** Strings made of pieces that reach every branch of the expression, from a fixed seed. */
function* generated(count: number, seed: number): Generator<string> {
  let state = seed;
  const random = (n: number) => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state % n;
  };
  const schemes = PIECES.slice(0, 3);
  for (let i = 0; i < count; i++) {
    let text = random(5) === 0 ? '' : (schemes[random(schemes.length)] ?? '');
    const length = 1 + random(12);
    for (let j = 0; j < length; j++) text += PIECES[random(PIECES.length)] ?? '';
    yield text;
  }
}

describe('the url format', () => {
  it('accepts exactly what the ajv-formats expression accepts', () => {
    const differences: string[] = [];
    for (const text of generated(60_000, 7)) {
      if (linearUrlFormat(text) !== reference.test(text)) differences.push(JSON.stringify(text));
    }
    expect(differences).toEqual([]);
  });

  it.each([
    ['http://example.com', true],
    ['https://user:pass@example.com:8080/path?q=1#f', true],
    ['ftp://1.2.3.4/', true],
    ['http://10.0.0.1', false],
    ['http://172.16.0.1', false],
    ['http://172.160.0.1', true],
    ['http://user@10.0.0.1@example.com', true],
    ['http://a@b.com/x@10.0.0.1', true],
    ['http://example', false],
    ['http://ex--ample.com', false],
    ['http://example.com:1', false],
    ['http://example.com/a b', false],
    ['http://bücher.de', true],
  ])('%s: %s', (text, expected) => {
    expect(linearUrlFormat(text)).toBe(expected);
    expect(reference.test(text)).toBe(expected);
  });

  it('decides a long string in one pass, where the expression backtracks over every split before an @', () => {
    // 40,000 colons took the expression 1.4 s, and its time grows with the square of the length.
    expect(linearUrlFormat(`http://${':'.repeat(1_000_000)} `)).toBe(false);
    expect(linearUrlFormat(`http://${'a@a/'.repeat(250_000)} `)).toBe(false);
    expect(linearUrlFormat(`http://${'a'.repeat(1_000_000)}.com/`)).toBe(true);
  });
});
