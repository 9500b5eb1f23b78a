import { closedLoop, CPU_PER_ANSWER, loadNotes, milliseconds, shortRun, type ClosedLoopResult } from '../lib/closed-loop.js';
import { microsPer } from '../lib/proc-sampler.js';
import { JsonClient, prop } from '../lib/http.js';
import { maxSubscriberLag } from '../lib/lag.js';
import { ingestBody } from '../lib/payload.js';
import { table } from '../lib/table.js';
import { startIntake, whileRunning } from '../lib/targets.js';
import type { Scenario } from './types.js';

const TARGET_COST_PERCENT = 15;

interface Row {
  readonly statistics: 'enabled' | 'disabled';
  readonly run: ClosedLoopResult;
  /** Whether /health/ready lists the statistics subscriber. */
  readonly subscribed: boolean;
  /** Events the slowest subscriber had still to handle when the load ended. */
  readonly backlog: number;
}

/** Issue 6: single-item ingest with the statistics context and without it (INTAKE_DISABLE=statistics). */
export const statisticsCost: Scenario = {
  name: 'statistics',
  async run(ctx) {
    const durability = ctx.options.durabilities[0] ?? 'power-loss';
    const run = shortRun(ctx);
    const connections = ctx.options.connections;
    const rows: Row[] = [];
    const exitNotes: string[] = [];
    for (const statistics of ['enabled', 'disabled'] as const) {
      const env: Record<string, string> = statistics === 'disabled' ? { INTAKE_DISABLE: 'statistics' } : {};
      const target = await startIntake(ctx, durability, { name: `Intake, statistics ${statistics}`, env });
      const { result, notes } = await whileRunning(ctx, target, async () => {
        const load = await closedLoop(ctx, target, { label: target.name, path: '/ingest', body: ingestBody(), connections, ...run });
        const client = new JsonClient(target.baseUrl, {});
        const readiness = (await client.request('GET', '/health/ready').finally(() => client.close())).body;
        return { load, subscribed: prop(readiness, 'checks', 'subscriber:statistics') !== undefined, backlog: maxSubscriberLag(readiness) };
      });
      rows.push({ statistics, run: result.load, subscribed: result.subscribed, backlog: result.backlog });
      exitNotes.push(...notes);
    }

    const [enabled, disabled] = rows;
    const cost = enabled && disabled ? (1 - enabled.run.load.requestsPerSecAvg / disabled.run.load.requestsPerSecAvg) * 100 : null;
    const ignored = disabled?.subscribed === true;
    return {
      title: `Statistics cost: POST /ingest with and without the statistics context, ${connections} connections, ${run.durationSec} s after ${run.warmupSec} s warm-up (${durability})`,
      tables: [
        table(
          [
            { header: 'statistics', value: (r: Row) => r.statistics, align: 'left' },
            { header: 'req/s', value: (r) => r.run.load.requestsPerSecAvg },
            { header: 'p50 ms', value: (r) => milliseconds(r.run.load.latencyP50Ms), align: 'right' },
            { header: 'p99 ms', value: (r) => milliseconds(r.run.load.latencyP99Ms), align: 'right' },
            { header: 'server CPU %', value: (r) => r.run.serverCpuPercent },
            { header: CPU_PER_ANSWER, value: (r) => microsPer(r.run.serverThreads, r.run.load.count2xx), align: 'right' },
            { header: 'subscriber backlog after', value: (r) => r.backlog },
            { header: 'statistics subscribed', value: (r) => (r.subscribed ? 'yes' : 'no'), align: 'left' },
          ],
          rows,
        ),
      ],
      notes: [
        `Each row is a fresh Intake; "disabled" runs with INTAKE_DISABLE=statistics. "subscriber backlog after" is the largest lag /health/ready`,
        `reports right after the load: work still to do, not counted in req/s.`,
        cost === null
          ? 'No cost: a run is missing.'
          : ignored
            ? `Intake ignored INTAKE_DISABLE (the statistics subscriber still ran): both rows did the same work, so their ${cost.toFixed(1)} % apart is noise.`
            : `Statistics cost ${cost.toFixed(1)} % of the throughput (target ≤ ${TARGET_COST_PERCENT} %).`,
        ...rows.flatMap((r) => loadNotes(r.run)),
        ...exitNotes,
      ],
      ok: rows.every((r) => r.run.load.count2xx > 0),
    };
  },
};
