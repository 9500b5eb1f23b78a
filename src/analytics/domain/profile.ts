import type { JsonObject, JsonValue } from '../../shared/events.js';

/**
 * What identify, alias and group messages tell about a user, and any message that names both ids: the
 * SDKs send the `anonymousId` beside the `userId` once the user is known, so a track or page ties them
 * as an identify does (attribution reads the same tie, decision 0038). Traits are facts stamped with when
 * they were set: the latest value of each trait wins, whatever order the messages are read in.
 */
export type ProfileFact =
  | {
      readonly kind: 'trait';
      readonly subject: Subject;
      readonly trait: string;
      readonly value: JsonValue;
      readonly setAt: string;
      readonly itemId: string;
    }
  | { readonly kind: 'linked-id'; readonly userId: string; readonly otherId: string; readonly link: 'anonymous' | 'alias' }
  | { readonly kind: 'membership'; readonly userId: string; readonly groupId: string; readonly since: string };

export type Subject = { readonly type: 'user' | 'group'; readonly id: string };

export const PROFILE_MESSAGE_TYPES = ['identify', 'alias', 'group'] as const;

/** Whether a message of another type says something about a profile: it ties two ids. */
export const tiesIds = (payload: { readonly userId?: unknown; readonly anonymousId?: unknown }): boolean => {
  const userId = idOf(payload.userId as JsonValue | undefined);
  const anonymousId = idOf(payload.anonymousId as JsonValue | undefined);
  return userId !== undefined && anonymousId !== undefined && userId !== anonymousId;
};

/** A stored message's profile facts; messages of other types have none. */
export function profileFactsOf(itemId: string, payload: JsonObject): ProfileFact[] {
  const userId = idOf(payload.userId);
  const anonymousId = idOf(payload.anonymousId);
  const at = typeof payload.timestamp === 'string' ? payload.timestamp : '';
  const traitsOf = (subject: Subject, traits: JsonValue | undefined): ProfileFact[] =>
    isObject(traits) ? Object.entries(traits).map(([trait, value]) => ({ kind: 'trait', subject, trait, value, setAt: at, itemId })) : [];
  const link: ProfileFact[] =
    userId && anonymousId && anonymousId !== userId ? [{ kind: 'linked-id', userId, otherId: anonymousId, link: 'anonymous' }] : [];
  switch (payload.type) {
    case 'identify': {
      const id = userId ?? anonymousId;
      if (!id) return [];
      // RudderStack's SDKs send an identify's traits in context.traits, some in both places: traits wins.
      const contextTraits = isObject(payload.context) ? payload.context.traits : undefined;
      const traits = isObject(contextTraits) ? { ...contextTraits, ...(isObject(payload.traits) ? payload.traits : {}) } : payload.traits;
      return [...link, ...traitsOf({ type: 'user', id }, traits)];
    }
    case 'alias': {
      const previousId = idOf(payload.previousId);
      return userId && previousId && previousId !== userId ? [{ kind: 'linked-id', userId, otherId: previousId, link: 'alias' }] : [];
    }
    case 'group': {
      const groupId = idOf(payload.groupId);
      const id = userId ?? anonymousId;
      if (!groupId || !id) return [];
      return [...link, { kind: 'membership', userId: id, groupId, since: at }, ...traitsOf({ type: 'group', id: groupId }, payload.traits)];
    }
    case 'track':
    case 'page':
    case 'screen':
      return link;
    default:
      return [];
  }
}

/** Merges traits set on several subjects (a user and the ids aliased to it): the latest setting wins. */
export function mergeTraits(settings: ReadonlyArray<{ trait: string; value: JsonValue; setAt: string; itemId: string }>): JsonObject {
  const latest = new Map<string, { value: JsonValue; setAt: string; itemId: string }>();
  for (const setting of settings) {
    const known = latest.get(setting.trait);
    if (!known || isLater(setting, known)) latest.set(setting.trait, setting);
  }
  return Object.fromEntries([...latest.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([trait, { value }]) => [trait, value]));
}

/** Order of two settings of one trait: by time, then by item id so every replay agrees. */
export const isLater = (a: { setAt: string; itemId: string }, b: { setAt: string; itemId: string }) =>
  a.setAt !== b.setAt ? a.setAt > b.setAt : a.itemId > b.itemId;

const idOf = (value: JsonValue | undefined): string | undefined =>
  typeof value === 'string' && value.length > 0 ? value : typeof value === 'number' ? String(value) : undefined;

const isObject = (value: JsonValue | undefined): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
