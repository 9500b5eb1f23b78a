import type { Kysely } from 'kysely';
import type { InlineProjection } from '../../../shared/event-store/event-store.js';
import { decodeCursor, pageOf } from '../../../shared/pagination.js';
import type { OutcomeLog, PipelineCatalog } from '../../application/ports.js';
import { DEFAULT_PIPELINE } from '../../domain/pipeline.js';
import { PIPELINE_EVENT_TYPES, type PipelineEvent } from '../../domain/pipeline-config.js';
import type { StepConfig } from '../../domain/processor.js';
import { rowPieces } from '../../../shared/sql/statement-shapes.js';
import { insertTemplate } from '../../../shared/sql/insert-template.js';

type Tables = {
  processing_pipelines: { event_type: string; steps: string; configured_at: string };
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
    async list(page) {
      let query = tables(db)
        .selectFrom('processing_pipelines')
        .selectAll()
        .orderBy('event_type')
        .limit(page.limit + 1);
      if (page.cursor !== undefined) query = query.where('event_type', '>', decodeCursor(page.cursor));
      return pageOf((await query.execute()).map(toView), page.limit, (pipeline) => pipeline.eventType);
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
