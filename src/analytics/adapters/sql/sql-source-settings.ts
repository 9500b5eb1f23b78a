import type { Kysely } from 'kysely';
import type { SourceSettingsStore } from '../../application/source-settings.js';

type Tables = { analytics_sources: { app_id: string; allowed_origins: string | null; updated_at: string } };

export function sqlSourceSettings(db: Kysely<object>): SourceSettingsStore {
  const t = db.withTables<Tables>();
  return {
    async get(appId) {
      const row = await t.selectFrom('analytics_sources').selectAll().where('app_id', '=', appId).executeTakeFirst();
      if (!row) return undefined;
      return { appId, allowedOrigins: row.allowed_origins === null ? null : (JSON.parse(row.allowed_origins) as string[]) };
    },
    async put(settings, at) {
      const allowed = settings.allowedOrigins === null ? null : JSON.stringify(settings.allowedOrigins);
      await t
        .insertInto('analytics_sources')
        .values({ app_id: settings.appId, allowed_origins: allowed, updated_at: at })
        .onConflict((oc) => oc.column('app_id').doUpdateSet({ allowed_origins: allowed, updated_at: at }))
        .execute();
    },
  };
}
