/**
 * The `url` format of ajv-formats, decided in one pass over the string. Its regular expression runs
 * on V8's backtracking engine and starts with `(?:\S+(?::\S*)?@)?`, which tries every split of the
 * text before an `@`: "http://" and 40,000 colons took 1.4 s, and a string of 1 MB would hold the
 * storage thread for minutes. This function accepts exactly the strings that expression accepts
 * (with its `i` and `u` flags), checked against it on generated strings in url-format.unit.test.ts.
 *
 * What the expression says, and how it is decided here:
 * - `^(?:https?|ftp)://`, any case;
 * - an optional user part, `\S+@`: any text without white space up to some `@` (`:\S*` adds nothing);
 * - a host, which ends where the characters a host may hold end (`:`, `/` and `@` are not among
 *   them), so after each possible `@` there is one host to try, and these hosts do not overlap;
 * - the host is a public IPv4 address or a name: labels of letters, digits and characters from
 *   U+00A1 to U+FFFF, joined by single hyphens, and a last label of two letters or more;
 * - then an optional port of 2 to 5 digits, an optional path of `/` and text without white space, and the end.
 */
const SCHEME = /^(?:https?|ftp):\/\//iu;
const FIRST_OCTET = /^(?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])$/;
const MIDDLE_OCTET = /^(?:1?\d{1,2}|2[0-4]\d|25[0-5])$/;
const LAST_OCTET = /^(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4])$/;
// The ranges the expression excludes by lookahead: 10/8, 127/8, 169.254/16, 192.168/16, 172.16/12.
const PRIVATE_SECOND_OF_172 = /^(?:1[6-9]|2\d|3[01])$/;
// JavaScript's \s, with or without the u flag: every such character is a single UTF-16 unit.
const WHITE_SPACE = /^\s$/u;

export function linearUrlFormat(text: string): boolean {
  const scheme = SCHEME.exec(text);
  if (!scheme) return false;
  const start = scheme[0].length;
  // Where white space is: the user part may hold none, nor may the path.
  let firstSpace = text.length;
  let lastSpace = -1;
  for (let i = start; i < text.length; i++) {
    if (WHITE_SPACE.test(text.charAt(i))) {
      if (firstSpace === text.length) firstSpace = i;
      lastSpace = i;
    }
  }
  const restFits = (at: number) => portAndPathFit(text, at, lastSpace);
  if (hostFits(text, start, restFits)) return true;
  // A user part: non-empty, no white space, up to an `@`; the host after it.
  for (let at = text.indexOf('@', start + 1); at !== -1 && at < firstSpace; at = text.indexOf('@', at + 1)) {
    if (hostFits(text, at + 1, restFits)) return true;
  }
  return false;
}

/** The host starting at `from`: as far as host characters go, then a port and path that fit. */
function hostFits(text: string, from: number, restFits: (at: number) => boolean): boolean {
  let end = from;
  while (end < text.length) {
    const code = text.codePointAt(end) ?? 0;
    if (!isHostCharacter(code)) break;
    end += code > 0xffff ? 2 : 1;
  }
  if (end === from || !restFits(end)) return false;
  const host = text.slice(from, end);
  return isPublicIpv4(host) || isHostName(host);
}

/** `[a-z0-9\u{00a1}-\u{ffff}]` with the i flag, and the dots and hyphens between them. */
function isHostCharacter(code: number): boolean {
  return isLabelCharacter(code) || code === 0x2e || code === 0x2d;
}

function isLabelCharacter(code: number): boolean {
  return (
    (code >= 0x61 && code <= 0x7a) || (code >= 0x41 && code <= 0x5a) || (code >= 0x30 && code <= 0x39) || (code >= 0xa1 && code <= 0xffff)
  );
}

/** `[a-z\u{00a1}-\u{ffff}]` with the i flag: what the last label is made of. */
function isTopLevelCharacter(code: number): boolean {
  return (code >= 0x61 && code <= 0x7a) || (code >= 0x41 && code <= 0x5a) || (code >= 0xa1 && code <= 0xffff);
}

function isPublicIpv4(host: string): boolean {
  const parts = host.split('.');
  if (parts.length !== 4) return false;
  const [first = '', second = '', third = '', last = ''] = parts;
  if (!FIRST_OCTET.test(first) || !MIDDLE_OCTET.test(second) || !MIDDLE_OCTET.test(third) || !LAST_OCTET.test(last)) return false;
  if (first === '10' || first === '127') return false;
  if ((first === '169' && second === '254') || (first === '192' && second === '168')) return false;
  return !(first === '172' && PRIVATE_SECOND_OF_172.test(second));
}

/** Labels of label characters joined by single hyphens, a dot between labels, and a last label of two letters or more. */
function isHostName(host: string): boolean {
  const labels = host.split('.');
  const last = labels.pop() ?? '';
  if (labels.length === 0) return false;
  for (const label of labels) {
    if (label.length === 0 || label.startsWith('-') || label.endsWith('-') || label.includes('--')) return false;
  }
  let count = 0;
  for (const character of last) {
    if (!isTopLevelCharacter(character.codePointAt(0) ?? 0)) return false;
    count += 1;
  }
  return count >= 2;
}

/** `(?::\d{2,5})?(?:\/[^\s]*)?$` at `at`, given where the last white space is. */
function portAndPathFit(text: string, at: number, lastSpace: number): boolean {
  let position = at;
  if (text.charAt(position) === ':') {
    let digits = 0;
    while (isDigit(text.charCodeAt(position + 1 + digits))) digits += 1;
    if (digits < 2 || digits > 5) return false;
    position += 1 + digits;
  }
  if (position === text.length) return true;
  return text.charAt(position) === '/' && lastSpace < position;
}

const isDigit = (code: number) => code >= 0x30 && code <= 0x39;
