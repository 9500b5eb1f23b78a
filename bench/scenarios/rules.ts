import { closedLoop, CPU_PER_ANSWER, loadNotes, milliseconds, shortRun, type ClosedLoopResult } from '../lib/closed-loop.js';
import { microsPer } from '../lib/proc-sampler.js';
import { JsonClient, prop } from '../lib/http.js';
import { appEvent } from '../lib/payload.js';
import { table } from '../lib/table.js';
import { startIntake, whileRunning } from '../lib/targets.js';
import type { Scenario } from './types.js';

const RULES = 10;
/** The event's total: rules "total > N × 10" match for N = 1..5. */
const TOTAL = 55;
/** Without rules first: the rules' deliveries go on in the background after their run. */
const APPS = [
  { app: 'plain', rules: 0, expected: '0 / 0' },
  { app: 'shop', rules: RULES, expected: `${RULES} / 5` },
] as const;

interface Row {
  readonly app: string;
  readonly rules: number;
  readonly expected: string;
  /** routing_summary of a probe event: evaluated / matched. */
  readonly summary: string;
  readonly run: ClosedLoopResult;
}

/** Issue 5: single application events with 10 active database rules, beside the same without rules. */
export const ingestWithRules: Scenario = {
  name: 'rules',
  async run(ctx) {
    const durability = ctx.options.durabilities[0] ?? 'power-loss';
    const run = shortRun(ctx);
    const connections = ctx.options.connections;
    const body = JSON.stringify(appEvent(TOTAL));
    const target = await startIntake(ctx, durability);
    const { result: rows, notes: exit } = await whileRunning(ctx, target, async () => {
      const client = new JsonClient(target.baseUrl, target.headers);
      try {
        await client.expect(201, 'POST', '/api/applications', { name: 'Shop', app_id: 'shop' });
        await client.expect(201, 'POST', '/api/applications', { name: 'Plain', app_id: 'plain' });
        for (let n = 1; n <= RULES; n += 1) {
          await client.expect(201, 'POST', '/api/routing-rules', {
            app_id: 'shop',
            rule_name: `total over ${n * 10}`,
            event_type_filter: 'order_created',
            condition: { 'payload.total': { $gt: n * 10 } },
            destination_type: 'database',
            destination_config: { table: `bench_rule_${n}` },
          });
        }
        const measured: Row[] = [];
        for (const app of APPS) {
          const path = `/api/ingest/${app.app}`;
          const probe = prop(await client.expect(201, 'POST', path, body), 'data', 'routing_summary');
          const summary = `${String(prop(probe, 'rules_evaluated'))} / ${String(prop(probe, 'rules_matched'))}`;
          measured.push({
            ...app,
            summary,
            run: await closedLoop(ctx, target, { label: `POST ${path}`, path, body, connections, ...run }),
          });
        }
        return measured;
      } finally {
        await client.close();
      }
    });

    const [plain, shop] = rows;
    const summariesOk = rows.every((row) => row.summary === row.expected);
    const cost = plain && shop ? (1 - shop.run.load.requestsPerSecAvg / plain.run.load.requestsPerSecAvg) * 100 : null;
    return {
      title: `Ingest with ${RULES} active routing rules: POST /api/ingest/{app_id}, ${connections} connections, ${run.durationSec} s after ${run.warmupSec} s warm-up (${durability})`,
      tables: [
        table(
          [
            { header: 'app', value: (r: Row) => r.app, align: 'left' },
            { header: 'active rules', value: (r) => r.rules },
            { header: 'evaluated / matched', value: (r) => r.summary, align: 'right' },
            { header: 'req/s', value: (r) => r.run.load.requestsPerSecAvg },
            { header: 'p50 ms', value: (r) => milliseconds(r.run.load.latencyP50Ms), align: 'right' },
            { header: 'p99 ms', value: (r) => milliseconds(r.run.load.latencyP99Ms), align: 'right' },
            { header: 'server CPU %', value: (r) => r.run.serverCpuPercent },
            { header: CPU_PER_ANSWER, value: (r) => microsPer(r.run.serverThreads, r.run.load.count2xx), align: 'right' },
          ],
          rows,
        ),
      ],
      notes: [
        `Rules: "payload.total > N × 10" (N = 1..${RULES}) to database tables, total ${TOTAL}, so 5 match each event; one Intake, the app`,
        `without rules measured first. "evaluated / matched" is the routing_summary of a probe event.` +
          (cost === null ? '' : ` Rules cost ${cost.toFixed(1)} % of the throughput.`),
        ...rows
          .filter((r) => r.summary !== r.expected)
          .map((r) => `FAILED: ${r.app}: routing summary ${r.summary}, expected ${r.expected}.`),
        ...rows.flatMap((r) => loadNotes(r.run)),
        ...exit,
      ],
      ok: summariesOk && rows.every((r) => r.run.load.count2xx > 0),
    };
  },
};
