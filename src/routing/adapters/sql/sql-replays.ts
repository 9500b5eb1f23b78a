import type { ExpressionBuilder, Kysely } from 'kysely';
import { ConflictError } from '../../../shared/errors.js';
import { decodeKeyParts, pageOf } from '../../../shared/pagination.js';
import type { ReplayJob, ReplayStatus, ReplayStore } from '../../application/ports.js';

type ReplayRow = {
  job_id: string;
  rule_id: string;
  from_at: string;
  to_at: string;
  reevaluate: number;
  fresh_ids: number;
  status: string;
  cursor_position: number;
  cursor_id: string;
  scanned: number;
  scheduled: number;
  total: number | null;
  error: string | null;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
};
type Tables = { routing_replays: ReplayRow };

const tables = (db: Kysely<object>) => db.withTables<Tables>();
const toJob = (row: ReplayRow): ReplayJob => ({
  jobId: row.job_id,
  ruleId: row.rule_id,
  from: row.from_at,
  to: row.to_at,
  reevaluate: Number(row.reevaluate) === 1,
  freshIds: Number(row.fresh_ids) === 1,
  status: row.status as ReplayStatus,
  cursor: { position: Number(row.cursor_position), deliveryId: row.cursor_id },
  scanned: Number(row.scanned),
  scheduled: Number(row.scheduled),
  total: row.total === null ? null : Number(row.total),
  error: row.error,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
  finishedAt: row.finished_at,
});

/** Jobs after the cursor's, newest first: created_at never changes, and the id settles jobs made in the same millisecond. */
function olderThan(cursor: string) {
  const [createdAt, jobId] = decodeKeyParts(cursor, ['string', 'string']);
  return (eb: ExpressionBuilder<Tables, 'routing_replays'>) =>
    eb.or([eb('created_at', '<', createdAt), eb.and([eb('created_at', '=', createdAt), eb('job_id', '<', jobId)])]);
}

/** Replay jobs, so a job survives a restart and resumes where its cursor stands. */
export function sqlReplayStore(db: Kysely<object>): ReplayStore {
  return {
    async create(job) {
      const running = await tables(db)
        .selectFrom('routing_replays')
        .select('job_id')
        .where('rule_id', '=', job.ruleId)
        .where('status', '=', 'running')
        .executeTakeFirst();
      if (running) throw new ConflictError('routing.replay-running', `rule ${job.ruleId} already has replay ${running.job_id} running`);
      try {
        await tables(db)
          .insertInto('routing_replays')
          .values({
            job_id: job.jobId,
            rule_id: job.ruleId,
            from_at: job.from,
            to_at: job.to,
            reevaluate: job.reevaluate ? 1 : 0,
            fresh_ids: job.freshIds ? 1 : 0,
            status: job.status,
            cursor_position: job.cursor.position,
            cursor_id: job.cursor.deliveryId,
            scanned: job.scanned,
            scheduled: job.scheduled,
            total: job.total,
            error: job.error,
            created_at: job.createdAt,
            updated_at: job.updatedAt,
            finished_at: job.finishedAt,
          })
          .execute();
      } catch (error) {
        // The unique index on running jobs: a concurrent request started one first.
        if (/unique|duplicate/i.test((error as Error).message))
          throw new ConflictError('routing.replay-running', `rule ${job.ruleId} already has a replay running`);
        throw error;
      }
    },
    async get(jobId) {
      const row = await tables(db).selectFrom('routing_replays').selectAll().where('job_id', '=', jobId).executeTakeFirst();
      return row && toJob(row);
    },
    async listByRule(ruleId, page) {
      let query = tables(db)
        .selectFrom('routing_replays')
        .selectAll()
        .where('rule_id', '=', ruleId)
        .orderBy('created_at', 'desc')
        .orderBy('job_id', 'desc')
        .limit(page.limit + 1);
      if (page.cursor !== undefined) query = query.where(olderThan(page.cursor));
      return pageOf((await query.execute()).map(toJob), page.limit, (job) => [job.createdAt, job.jobId]);
    },
    async running() {
      const rows = await tables(db)
        .selectFrom('routing_replays')
        .selectAll()
        .where('status', '=', 'running')
        .orderBy('created_at')
        .execute();
      return rows.map(toJob);
    },
    async advance(jobId, { cursor, scanned, scheduled, at }) {
      await tables(db)
        .updateTable('routing_replays')
        .set({ cursor_position: cursor.position, cursor_id: cursor.deliveryId, scanned, scheduled, updated_at: at })
        .where('job_id', '=', jobId)
        .where('status', '=', 'running')
        .execute();
    },
    async claimStep(jobId, from, at) {
      // An update, so the row stays locked until the step commits: a replica stepping at once waits,
      // then finds the cursor moved on.
      const result = await tables(db)
        .updateTable('routing_replays')
        .set({ updated_at: at })
        .where('job_id', '=', jobId)
        .where('status', '=', 'running')
        .where('cursor_position', '=', from.position)
        .where('cursor_id', '=', from.deliveryId)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },
    async finish(jobId, status, at, error) {
      const result = await tables(db)
        .updateTable('routing_replays')
        .set({ status, updated_at: at, finished_at: at, error: error ?? null })
        .where('job_id', '=', jobId)
        .where('status', '=', 'running')
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },
  };
}
