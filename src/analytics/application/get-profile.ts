import { compareBytes } from '../../shared/byte-order.js';
import { NotFoundError } from '../../shared/errors.js';
import type { JsonObject } from '../../shared/events.js';
import { rowsWithin } from '../../shared/pagination.js';
import { isLater, mergeTraits } from '../domain/profile.js';
import type { ProfileViews, TraitSize } from './profile-store.js';

/**
 * What one profile answer holds at most. Profiles grow with what SDKs send: every identify can add
 * traits of up to a message's 32 KB and another anonymous id, every group message another group. Past
 * these bounds the answer stops, in order of name, and says which of its parts it cut; whatever is
 * stored, it stays under about 3.5 MB.
 */
export const PROFILE_LIMITS = {
  /** Traits of the user, and the bytes of their names and stored JSON values. */
  traits: 1000,
  traitBytes: 1024 * 1024,
  /** Of each link (anonymous ids, previous ids): ids, and their bytes. */
  ids: 250,
  idBytes: 128 * 1024,
  /** Groups, the bytes of their ids, and of each group's traits (a message's worth). */
  groups: 50,
  groupIdBytes: 128 * 1024,
  groupTraitBytes: 32 * 1024,
} as const;

export const PROFILE_PARTS = ['traits', 'anonymous_ids', 'previous_ids', 'groups'] as const;
export type ProfilePart = (typeof PROFILE_PARTS)[number];

export interface Profile {
  readonly appId: string;
  readonly userId: string;
  /** Traits set on the user or an id aliased to it, the latest setting of each, in order of name. */
  readonly traits: JsonObject;
  readonly anonymousIds: string[];
  /** Earlier ids merged into this user by alias messages, and into those by earlier ones. */
  readonly previousIds: string[];
  readonly groups: Array<{ groupId: string; traits: JsonObject; since: string; traitsTruncated: boolean }>;
  /** The parts that hold only their first entries (by name; previous ids: the nearest in the chain): the profile has more than PROFILE_LIMITS. */
  readonly truncated: ProfilePart[];
}

// A chunk holds every setting of at least one trait: one per identity at most (1 + 2 × 250 ids).
const TRAIT_CHUNK = 1024;

/**
 * The latest setting of each trait of these subjects, in order of name, as long as they fit `maxTraits`
 * and `maxBytes` (names and stored values); `truncated` when some were left out.
 */
async function mergedTraitsWithin(
  views: ProfileViews,
  appId: string,
  type: 'user' | 'group',
  ids: readonly string[],
  maxTraits: number,
  maxBytes: number,
): Promise<{ traits: JsonObject; truncated: boolean }> {
  const chosen: TraitSize[] = [];
  let bytes = 0;
  let truncated = false;
  let after: string | undefined;
  reading: for (;;) {
    const rows = await views.traitSizes(appId, type, ids, after, TRAIT_CHUNK);
    const full = rows.length === TRAIT_CHUNK;
    // A full chunk may end in the middle of a trait's settings: that trait is read again with the next.
    const last = rows.at(-1)?.trait;
    const complete = full ? rows.filter((row) => row.trait !== last) : rows;
    const byTrait = new Map<string, TraitSize>();
    for (const row of complete) {
      const known = byTrait.get(row.trait);
      if (!known || isLater(row, known)) byTrait.set(row.trait, row);
    }
    for (const setting of byTrait.values()) {
      const size = Buffer.byteLength(setting.trait) + setting.bytes;
      if (chosen.length === maxTraits || bytes + size > maxBytes) {
        truncated = true;
        break reading;
      }
      chosen.push(setting);
      bytes += size;
    }
    if (!full) break;
    after = complete.at(-1)?.trait;
    if (after === undefined) {
      truncated = true;
      break;
    }
  }
  const values = chosen.length > 0 ? await views.traitValues(appId, type, chosen) : [];
  const valueOf = new Map(values.map((v) => [`${v.subject}\0${v.trait}`, v.value]));
  const settings = chosen.flatMap((c) => {
    const value = valueOf.get(`${c.subject}\0${c.trait}`);
    // A setting replaced between the two reads is left out of this answer.
    return value === undefined ? [] : [{ ...c, value }];
  });
  return { traits: mergeTraits(settings), truncated };
}

/** The first ids (or groups) up to `limit` and `maxBytes`; one more row read tells that there are more. */
function within<T>(rows: readonly T[], limit: number, maxBytes: number, bytesOf: (row: T) => number): { kept: T[]; truncated: boolean } {
  const kept = rowsWithin(
    rows.map((row) => ({ row, bytes: bytesOf(row) })),
    limit,
    maxBytes,
  ).map(({ row }) => row);
  return { kept, truncated: kept.length < rows.length };
}

/**
 * The ids merged into a user by alias messages, then those merged into them, a step of the chain per
 * read: nearest first, one more than `limits.ids` at most (which tells that there are more).
 */
async function aliasChain(views: ProfileViews, appId: string, userId: string): Promise<Array<{ otherId: string; bytes: number }>> {
  const wanted = PROFILE_LIMITS.ids + 1;
  const seen = new Set([userId]);
  const found: Array<{ otherId: string; bytes: number }> = [];
  for (let step = [userId]; step.length > 0 && found.length < wanted;) {
    // Ids met before (an alias back to the user, two paths to one id) come back too: read past them.
    const rows = await views.linkedIds(appId, step, 'alias', wanted + seen.size);
    const fresh = rows.filter((row) => !seen.has(row.otherId)).slice(0, wanted - found.length);
    for (const row of fresh) seen.add(row.otherId);
    found.push(...fresh);
    step = fresh.map((row) => row.otherId);
  }
  return found;
}

export const getProfile =
  (views: ProfileViews) =>
  async (appId: string, userId: string): Promise<Profile> => {
    const limits = PROFILE_LIMITS;
    const aliased = within(await aliasChain(views, appId, userId), limits.ids, limits.idBytes, (id) => id.bytes);
    const previousIds = aliased.kept.map((id) => id.otherId).sort(compareBytes);
    // The anonymous ids of every id the user was known by.
    const anonymousRows = await views.linkedIds(appId, [userId, ...previousIds], 'anonymous', limits.ids + 1);
    const anonymous = within(anonymousRows, limits.ids, limits.idBytes, (id) => id.bytes);
    const anonymousIds = anonymous.kept.map((id) => id.otherId);
    const identities = [userId, ...anonymousIds, ...previousIds];
    const [traits, memberships] = await Promise.all([
      mergedTraitsWithin(views, appId, 'user', identities, limits.traits, limits.traitBytes),
      views.groups(appId, identities, limits.groups + 1),
    ]);
    const groups = within(memberships, limits.groups, limits.groupIdBytes, (m) => Buffer.byteLength(m.groupId));
    if (Object.keys(traits.traits).length === 0 && !traits.truncated && identities.length === 1 && memberships.length === 0) {
      throw new NotFoundError('analytics.profile-not-found', `no traits, linked ids or groups known for user ${userId} of ${appId} yet`);
    }
    const groupProfiles = [];
    for (const { groupId, since } of groups.kept) {
      const groupTraits = await mergedTraitsWithin(views, appId, 'group', [groupId], limits.traits, limits.groupTraitBytes);
      groupProfiles.push({ groupId, traits: groupTraits.traits, since, traitsTruncated: groupTraits.truncated });
    }
    const truncated: ProfilePart[] = [];
    if (traits.truncated) truncated.push('traits');
    if (anonymous.truncated) truncated.push('anonymous_ids');
    if (aliased.truncated) truncated.push('previous_ids');
    if (groups.truncated) truncated.push('groups');
    return { appId, userId, traits: traits.traits, anonymousIds, previousIds, groups: groupProfiles, truncated };
  };
