import { NotFoundError } from '../../shared/errors.js';
import type { JsonObject } from '../../shared/events.js';
import { mergeTraits } from '../domain/profile.js';
import type { ProfileViews } from './profile-store.js';

export interface Profile {
  readonly appId: string;
  readonly userId: string;
  /** Every trait set on the user or an id aliased to it, latest value first. */
  readonly traits: JsonObject;
  readonly anonymousIds: string[];
  /** Earlier ids merged into this user by alias messages. */
  readonly previousIds: string[];
  readonly groups: Array<{ groupId: string; traits: JsonObject; since: string }>;
}

export const getProfile =
  (views: ProfileViews) =>
  async (appId: string, userId: string): Promise<Profile> => {
    const linked = await views.linkedIds(appId, userId);
    const anonymousIds = linked.filter((l) => l.link === 'anonymous').map((l) => l.otherId);
    const previousIds = linked.filter((l) => l.link === 'alias').map((l) => l.otherId);
    const identities = [userId, ...anonymousIds, ...previousIds];
    const [traits, memberships] = await Promise.all([views.traits(appId, 'user', identities), views.groups(appId, identities)]);
    if (traits.length === 0 && linked.length === 0 && memberships.length === 0) {
      throw new NotFoundError('analytics.profile-not-found', `no identify, alias or group message for user ${userId} of ${appId} yet`);
    }
    const groupIds = [...new Set(memberships.map((m) => m.groupId))];
    const groupTraits = groupIds.length > 0 ? await views.traits(appId, 'group', groupIds) : [];
    const groups = groupIds.map((groupId) => ({
      groupId,
      traits: mergeTraits(groupTraits.filter((t) => t.subject === groupId)),
      since:
        memberships
          .filter((m) => m.groupId === groupId)
          .map((m) => m.since)
          .sort()[0] ?? '',
    }));
    return { appId, userId, traits: mergeTraits(traits), anonymousIds, previousIds, groups };
  };
