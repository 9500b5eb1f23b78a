import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errorResponses, JsonObjectSchema } from '../../../shared/http/schemas.js';
import type { HttpContext } from '../../../shared/http/http-context.js';
import { PROFILE_LIMITS, PROFILE_PARTS, type Profile } from '../../application/get-profile.js';

const ProfileSchema = Type.Object(
  {
    app_id: Type.String(),
    user_id: Type.String(),
    traits: JsonObjectSchema,
    anonymous_ids: Type.Array(Type.String()),
    previous_ids: Type.Array(Type.String(), { description: 'Ids merged into this user by alias messages' }),
    groups: Type.Array(
      Type.Object({
        group_id: Type.String(),
        traits: JsonObjectSchema,
        since: Type.String(),
        traits_truncated: Type.Boolean({
          description: `true when the group's traits pass ${PROFILE_LIMITS.groupTraitBytes / 1024} KB: the first by name are given`,
        }),
      }),
    ),
    truncated: Type.Array(Type.Union(PROFILE_PARTS.map((part) => Type.Literal(part))), {
      description:
        `The parts cut to their first entries by name: more than ${PROFILE_LIMITS.traits} traits or ${PROFILE_LIMITS.traitBytes / 1024 / 1024} MB of them, ` +
        `more than ${PROFILE_LIMITS.ids} anonymous (or previous) ids or ${PROFILE_LIMITS.idBytes / 1024} KB of them, more than ` +
        `${PROFILE_LIMITS.groups} groups or ${PROFILE_LIMITS.groupIdBytes / 1024} KB of their ids. Empty when the profile is whole.`,
    }),
  },
  { $id: 'Profile' },
);

/** The profiles view kept from identify, alias and group messages: admin only. */
export function profileHttp(getProfile: (appId: string, userId: string) => Promise<Profile>): HttpContext {
  return {
    schemas: [ProfileSchema],
    routes: async (scope) => {
      const app = scope.withTypeProvider<TypeBoxTypeProvider>();
      app.get(
        '/api/profiles/:app_id/:user_id',
        {
          schema: {
            tags: ['profiles'],
            summary: "A user's merged traits, known anonymous ids and groups",
            params: Type.Object({
              app_id: Type.String({ minLength: 1, maxLength: 255 }),
              user_id: Type.String({ minLength: 1, maxLength: 255 }),
            }),
            response: { 200: Type.Ref('Profile'), ...errorResponses, 403: Type.Ref('Problem') },
          },
        },
        async (request) => {
          const profile = await getProfile(request.params.app_id, request.params.user_id);
          return {
            app_id: profile.appId,
            user_id: profile.userId,
            traits: profile.traits,
            anonymous_ids: profile.anonymousIds,
            previous_ids: profile.previousIds,
            groups: profile.groups.map((g) => ({
              group_id: g.groupId,
              traits: g.traits,
              since: g.since,
              traits_truncated: g.traitsTruncated,
            })),
            truncated: profile.truncated,
          };
        },
      );
    },
  };
}
