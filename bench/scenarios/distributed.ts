import { randomBytes } from 'node:crypto';
import { dropSchemas, startNats } from '../lib/distributed.js';
import { table } from '../lib/table.js';
import { exitNotes, startIntake, stopTarget, whileRunning, type Target } from '../lib/targets.js';
import {
  capacityThenLag,
  DISTRIBUTED_TARGET_P99_MS,
  lagColumns,
  lagExplanation,
  lagNotes,
  type LagMeasurement,
  type Phase,
} from './lag.js';
import type { Scenario } from './types.js';

const ROLES = ['ingestion', 'validation', 'processing', 'query'] as const;
const PHASES: readonly Phase[] = ['load', 'catch-up', 'paced'];
const DATABASE_URL = process.env.BENCH_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/test';
const NATS_SERVER = process.env.BENCH_NATS_SERVER || '/usr/sbin/nats-server';

/** One process's line of the CPU table. */
interface CpuRow {
  readonly label: string;
  readonly name: string;
  readonly cpu: LagMeasurement['cpu'];
}

/**
 * Issue 4: the lag scenario's measurement, embedded and then distributed (nats-server and one Intake
 * process per role on PostgreSQL, each role in schemas of a random prefix, dropped afterwards).
 */
export const distributed: Scenario = {
  name: 'distributed',
  needsDistributed: true,
  async run(ctx) {
    const durability = ctx.options.durabilities[0] ?? 'power-loss';
    const run = { warmupSec: ctx.options.warmupSec, durationSec: ctx.options.durationSec };
    const rows: LagMeasurement[] = [];
    const notes: string[] = [];

    const embedded = await startIntake(ctx, durability);
    const { result, notes: embeddedExit } = await whileRunning(ctx, embedded, () =>
      capacityThenLag(ctx, `embedded (${durability})`, { ingest: embedded, query: embedded }, run, {
        watch: { intake: embedded.child.pid },
      }),
    );
    rows.push(result);
    notes.push(...embeddedExit);

    const prefix = `bench_${randomBytes(4).toString('hex')}_`;
    ctx.progress(`distributed: nats-server, then ${ROLES.join(', ')} on ${DATABASE_URL.replace(/\/\/[^@/]*@/, '//')} (schemas ${prefix}*)`);
    const nats = await startNats(ctx, NATS_SERVER);
    const roles = new Map<string, Target>();
    try {
      for (const role of ROLES) {
        const env = { ROLE: role, DATABASE_URL, DB_SCHEMA_PREFIX: prefix, NATS_URL: nats.url };
        roles.set(role, await startIntake(ctx, durability, { name: `Intake ${role}`, env }));
      }
      const ingest = roles.get('ingestion');
      const query = roles.get('query');
      if (ingest === undefined || query === undefined) throw new Error('the ingestion and query roles did not start');
      const watch = { ...Object.fromEntries([...roles].map(([role, target]) => [role, target.child.pid])), 'nats-server': nats.child.pid };
      rows.push(
        await capacityThenLag(ctx, `distributed (${ROLES.length} roles)`, { ingest, query }, run, {
          watch,
          targetP99Ms: DISTRIBUTED_TARGET_P99_MS,
          pacedAt: 'end-to-end',
        }),
      );
    } finally {
      ctx.progress('distributed: stopping, dropping the schemas');
      for (const target of roles.values()) notes.push(...exitNotes(target, await stopTarget(ctx, target)));
      await nats.stop();
      await dropSchemas(
        DATABASE_URL,
        ROLES.map((role) => `${prefix}${role}`),
      );
    }

    const checks = rows.map(lagNotes);
    return {
      title: `Distributed vs embedded: POST /ingest capacity (${ctx.options.connections} connections, ${run.durationSec} s after ${run.warmupSec} s warm-up), then end-to-end lag at half of what each sustained`,
      tables: [
        table(lagColumns, rows),
        table(
          [
            { header: 'process', value: (r: CpuRow) => r.label, align: 'left' },
            ...PHASES.map((phase) => ({ header: `CPU % ${phase}`, value: (r: CpuRow) => r.cpu[phase][r.name] ?? null })),
          ],
          rows.flatMap((m) => Object.keys(m.cpu.load).map((name) => ({ label: `${m.setup}: ${name}`, name, cpu: m.cpu }))),
          'CPU by phase (100 % = one core; "machine" is everything: PostgreSQL, autocannon, the bench, any neighbour):',
        ),
      ],
      notes: [
        ...lagExplanation,
        `Distributed: nats-server (JetStream) and one Intake process per role (${ROLES.join(', ')}) on PostgreSQL; load goes to`,
        'ingestion, polls to query. Every process shares this machine with the load generator, PostgreSQL and NATS, so for the',
        'distributed capacity run "other processes" (below) counts the other roles, NATS and PostgreSQL too, not only neighbours.',
        ...checks.flatMap((c) => c.notes),
        ...notes,
      ],
      ok: checks.every((c) => !c.failed),
    };
  },
};
