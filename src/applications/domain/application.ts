import { ConflictError, NotFoundError, ValidationError } from '../../shared/errors.js';
import { longerThan } from '../../shared/contracts/text-length.js';

/**
 * A source of data: an application or a partner (the same thing). Its id is a string; an integer
 * id in a request body names the same source as its decimal string.
 */
export interface ApplicationCreated {
  readonly type: 'ApplicationCreated';
  readonly data: { app_id: string; name: string; created_at: string };
}

export interface ApplicationRenamed {
  readonly type: 'ApplicationRenamed';
  readonly data: { app_id: string; name: string; renamed_at: string };
}

export interface WriteKeyIssued {
  readonly type: 'WriteKeyIssued';
  /** Only the SHA-256 digest of the secret is ever recorded. */
  readonly data: { app_id: string; key_id: string; name: string | null; secret_digest: string; issued_at: string };
}

export interface WriteKeyRevoked {
  readonly type: 'WriteKeyRevoked';
  readonly data: { app_id: string; key_id: string; revoked_at: string };
}

export type ApplicationEvent = ApplicationCreated | ApplicationRenamed | WriteKeyIssued | WriteKeyRevoked;
export const APPLICATION_EVENT_TYPES = ['ApplicationCreated', 'ApplicationRenamed', 'WriteKeyIssued', 'WriteKeyRevoked'] as const;

export interface ApplicationState {
  readonly exists: boolean;
  readonly activeKeys: ReadonlySet<string>;
  readonly revokedKeys: ReadonlySet<string>;
}

export const noApplication: ApplicationState = { exists: false, activeKeys: new Set(), revokedKeys: new Set() };

export const applicationStreamId = (appId: string) => `application-${appId}`;

export function parseAppId(value: unknown, path = 'app_id'): string {
  const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value;
  if (typeof text !== 'string' || text.trim().length === 0) throw invalid(path, 'must be a non-empty string or an integer');
  if (longerThan(text, 255)) throw invalid(path, 'must be at most 255 characters');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(text)) throw invalid(path, 'must not contain control characters');
  return text;
}

// Dot segments: '.' and '..' name no path segment, since clients resolve them away, encoded or not.
const DOT_SEGMENT = /^\.\.?$/;
const EDGE_SPACE = /^\s|\s$/u;
// Every control character (C0, DEL and C1), line and paragraph separators, and every format character
// (the marks, embeddings, overrides and isolates that reorder text; zero-width spaces and joiners, soft
// hyphens, byte-order marks), with the other characters that show as nothing: the combining grapheme
// joiner and the Hangul fillers. Each makes an id look like another one.
// The combining grapheme joiner stands outside the class: it would join what is before it there.
const UNSHOWABLE = /[\p{Cc}\p{Cf}\u2028\u2029\u115f\u1160\u3164\uffa0]|\u034f/u;
/**
 * A zero-width joiner inside an emoji sequence (a family, a flag, a person with a skin tone), where it is
 * part of what shows: after a pictograph with its skin-tone modifier or variation selector, before another.
 */
const EMOJI_JOINER = /(?<=\p{Extended_Pictographic}[\u{1F3FB}-\u{1F3FF}]?\ufe0f?)\u200d(?=\p{Extended_Pictographic})/gu;
/** The tag characters of a subdivision flag (England, Scotland, Wales): format characters that show as the flag. */
const FLAG_TAGS = /(?<=\u{1F3F4})[\u{E0020}-\u{E007E}]+\u{E007F}/gu;
/**
 * Joiners that spell a word, as IDNA allows them (RFC 5892, CONTEXTJ): after a virama (Devanagari
 * क्‍ष, Bengali, Tamil…), and a non-joiner between two Arabic-script letters (Persian می‌خواهم).
 */
const VIRAMA =
  '\u094D\u09CD\u0A4D\u0ACD\u0B4D\u0BCD\u0C4D\u0CCD\u0D3B\u0D3C\u0D4D\u0DCA\u0E3A\u0F84\u1039\u103A\u1714\u1734\u17D2\uA8C4\uA9C0';
const SPELLING_JOINER = new RegExp(
  `(?<=[${VIRAMA}])[\u200c\u200d]|(?<=\\p{Script=Arabic}\\p{M}*)\u200c(?=\\p{M}*\\p{Script=Arabic})`,
  'gu',
);

/**
 * What the id of an application must also be when it is created (decision 0030): it names the
 * application in URL paths, in the headers of queued messages, which trim it, and in dashboards and
 * terminals. Applications that exist already keep their ids, whatever they are: refusing those would
 * shut their data and write keys out.
 */
export function checkNewAppId(appId: string, path = 'app_id'): void {
  if (DOT_SEGMENT.test(appId)) throw invalid(path, 'must not be "." or "..", which no URL path can hold');
  if (EDGE_SPACE.test(appId)) throw invalid(path, 'must not begin or end with whitespace');
  if (UNSHOWABLE.test(appId.replace(EMOJI_JOINER, '').replace(FLAG_TAGS, '').replace(SPELLING_JOINER, '')))
    throw invalid(path, 'must not contain control, line-separator, formatting or invisible characters');
  // Two spellings of one text (é as one character, or e and a combining accent) would be two applications.
  if (appId.normalize('NFC') !== appId) throw invalid(path, 'must be in Unicode normalization form C (NFC)');
}

export function decideCreate(appId: string, name: unknown, state: ApplicationState, at: Date): ApplicationCreated {
  if (state.exists) throw new ConflictError('applications.already-exists', `application ${appId} already exists`);
  checkNewAppId(appId);
  return { type: 'ApplicationCreated', data: { app_id: appId, name: parseName(name), created_at: at.toISOString() } };
}

/** A new name, for an application created on the fly (named after its id) or one that changed. */
export function decideRename(appId: string, name: unknown, state: ApplicationState, at: Date): ApplicationRenamed {
  if (!state.exists) throw new NotFoundError('applications.not-found', `no application ${appId}`);
  return { type: 'ApplicationRenamed', data: { app_id: appId, name: parseName(name), renamed_at: at.toISOString() } };
}

function parseName(name: unknown): string {
  if (typeof name !== 'string' || name.trim().length === 0 || longerThan(name, 255)) throw invalid('name', 'must be 1-255 characters');
  return name.trim();
}

export function decideIssueKey(
  appId: string,
  keyId: string,
  name: string | null,
  secretDigest: string,
  state: ApplicationState,
  at: Date,
): WriteKeyIssued {
  if (!state.exists) throw new NotFoundError('applications.not-found', `no application ${appId}`);
  return { type: 'WriteKeyIssued', data: { app_id: appId, key_id: keyId, name, secret_digest: secretDigest, issued_at: at.toISOString() } };
}

export function decideRevokeKey(appId: string, keyId: string, state: ApplicationState, at: Date): WriteKeyRevoked {
  if (!state.exists) throw new NotFoundError('applications.not-found', `no application ${appId}`);
  if (!state.activeKeys.has(keyId)) {
    throw new NotFoundError(
      'applications.key-not-found',
      state.revokedKeys.has(keyId) ? `key ${keyId} is already revoked` : `application ${appId} has no key ${keyId}`,
    );
  }
  return { type: 'WriteKeyRevoked', data: { app_id: appId, key_id: keyId, revoked_at: at.toISOString() } };
}

export function evolveApplication(state: ApplicationState, event: ApplicationEvent): ApplicationState {
  switch (event.type) {
    case 'ApplicationCreated':
      return { ...state, exists: true };
    case 'ApplicationRenamed':
      return state;
    case 'WriteKeyIssued':
      return { ...state, activeKeys: new Set([...state.activeKeys, event.data.key_id]) };
    case 'WriteKeyRevoked':
      return {
        ...state,
        activeKeys: new Set([...state.activeKeys].filter((k) => k !== event.data.key_id)),
        revokedKeys: new Set([...state.revokedKeys, event.data.key_id]),
      };
  }
}

function invalid(path: string, message: string): ValidationError {
  return new ValidationError('applications.invalid', `${path} ${message}`, [{ path, message }]);
}
