import { sql, type Kysely } from 'kysely';
import type { InlineProjection } from '../../../shared/event-store/event-store.js';
import { decodeCursor, encodeCursor, MAX_PAGE_BYTES, rowsWithin } from '../../../shared/pagination.js';
import type { OutcomeLog, PipelineCatalog, PipelineVersion } from '../../application/ports.js';
import { DEFAULT_PIPELINE } from '../../domain/pipeline.js';
import { PIPELINE_EVENT_TYPES, type PipelineEvent } from '../../domain/pipeline-config.js';
import type { StepConfig } from '../../domain/processor.js';
import { keyPieces, rowPieces } from '../../../shared/sql/statement-shapes.js';
import { insertTemplate } from '../../../shared/sql/insert-template.js';

type Tables = {
  processing_pipelines: { event_type: string; steps: string; configured_at: string };
  processing_pipeline_versions: { event_type: string; position: number | string; configured_at: string; steps: string | null };
  processing_outcomes: { item_id: string; outcome: string; position: number };
};

const tables = (db: Kysely<object>) => db.withTables<Tables>();

const insertOutcomes = insertTemplate<Tables['processing_outcomes'], { item_id: string }>(['item_id', 'outcome', 'position'], (db, rows) =>
  tables(db)
    .insertInto('processing_outcomes')
    .values(rows)
    .onConflict((oc) => oc.column('item_id').doNothing())
    .returning('item_id'),
);

/** The configured pipelines, written in the transaction of the configuration event. */
export const pipelinesProjection: InlineProjection = {
  name: 'processing.pipelines',
  handles: PIPELINE_EVENT_TYPES,
  async apply(db, events) {
    for (const event of events) {
      const { type, data } = event as unknown as PipelineEvent;
      await tables(db)
        .insertInto('processing_pipeline_versions')
        .values({
          event_type: data.event_type,
          position: event.position,
          configured_at: type === 'PipelineReset' ? data.reset_at : data.configured_at,
          steps: type === 'PipelineReset' ? null : JSON.stringify(data.steps),
        })
        .onConflict((oc) => oc.columns(['event_type', 'position']).doNothing())
        .execute();
      if (type === 'PipelineReset') {
        await tables(db).deleteFrom('processing_pipelines').where('event_type', '=', data.event_type).execute();
        continue;
      }
      const row = { event_type: data.event_type, steps: JSON.stringify(data.steps), configured_at: data.configured_at };
      await tables(db)
        .insertInto('processing_pipelines')
        .values(row)
        .onConflict((oc) => oc.column('event_type').doUpdateSet({ steps: row.steps, configured_at: row.configured_at }))
        .execute();
    }
  },
};

export function sqlPipelineCatalog(db: Kysely<object>): PipelineCatalog {
  const toView = (row: Tables['processing_pipelines']) => ({
    eventType: row.event_type,
    steps: JSON.parse(row.steps) as StepConfig[],
    configuredAt: row.configured_at,
  });
  return {
    async get(eventType) {
      const row = await tables(db).selectFrom('processing_pipelines').selectAll().where('event_type', '=', eventType).executeTakeFirst();
      return row ? toView(row) : { eventType, steps: DEFAULT_PIPELINE, configuredAt: null };
    },
    async versions(eventTypes) {
      const found = new Map<string, PipelineVersion[]>();
      for (const piece of keyPieces(db, eventTypes)) {
        const rows = await tables(db)
          .selectFrom('processing_pipeline_versions')
          .selectAll()
          .where('event_type', 'in', piece)
          .orderBy('position')
          .execute();
        for (const row of rows) {
          const version = { configuredAt: row.configured_at, steps: row.steps === null ? null : (JSON.parse(row.steps) as StepConfig[]) };
          found.set(row.event_type, [...(found.get(row.event_type) ?? []), version]);
        }
      }
      return found;
    },
    async list(page) {
      // Sizes first, then the rows of a page of at most MAX_PAGE_BYTES: a pipeline holds up to 20 steps of
      // 100 paths of 256 characters, and a thousand of those made one answer of 512 MB.
      let query = tables(db)
        .selectFrom('processing_pipelines')
        .select(['event_type', sql<number | string>`octet_length(steps)`.as('bytes')])
        .orderBy('event_type')
        .limit(page.limit + 1);
      if (page.cursor !== undefined) query = query.where('event_type', '>', decodeCursor(page.cursor));
      const sized = await query.execute();
      const taken = rowsWithin(sized, page.limit, MAX_PAGE_BYTES);
      const views = [];
      for (const piece of keyPieces(
        db,
        taken.map((row) => row.event_type),
      )) {
        const rows = await tables(db).selectFrom('processing_pipelines').selectAll().where('event_type', 'in', piece).execute();
        views.push(...rows.map(toView));
      }
      const byType = new Map(views.map((view) => [view.eventType, view]));
      const last = taken.at(-1)?.event_type;
      return {
        items: taken.flatMap((row) => byType.get(row.event_type) ?? []),
        nextCursor: sized.length > taken.length && last !== undefined ? encodeCursor(last) : null,
      };
    },
  };
}

export function sqlOutcomeLog(db: Kysely<object>): OutcomeLog {
  return {
    async recordNew(outcomes) {
      const recorded = new Set<string>();
      for (const piece of rowPieces(db, outcomes)) {
        const rows = await insertOutcomes(
          db,
          piece.map((o) => ({ item_id: o.itemId, outcome: o.outcome, position: o.position })),
        );
        for (const row of rows) recorded.add(row.item_id);
      }
      return recorded;
    },
  };
}
