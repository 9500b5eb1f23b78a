import { closedLoop, loadNotes, shortRun, type ClosedLoopResult } from '../lib/closed-loop.js';
import { JsonClient } from '../lib/http.js';
import { pacedIngest, POLL_INTERVAL_MS, waitForPipeline, type PacedRun } from '../lib/lag.js';
import { sampleCpuOf } from '../lib/proc-sampler.js';
import { ingestBody } from '../lib/payload.js';
import { percentile } from '../lib/stats.js';
import { table, type Column } from '../lib/table.js';
import { assertAlive, startIntake, whileRunning, type Target } from '../lib/targets.js';
import type { BenchContext, Scenario, ScenarioReport } from './types.js';

const LAG_SECONDS = 8;
const RATE_SHARE = 0.5;
const SAMPLE_EVERY = 20;
const MAX_IN_FLIGHT = 64;
const EMBEDDED_TARGET_P99_MS = 50;
export const DISTRIBUTED_TARGET_P99_MS = 250;

/** A pipeline that needed longer than this to finish the capacity run's backlog did not keep up with ingest. */
const KEPT_UP_MS = 1000;
/**
 * Polls of a sampled item come every fiftieth of the target (never under 2 ms), so a lag reads at most
 * 2 % of the target high. Polling the distributed stack every 2 ms cost it a tenth of the machine
 * while it measured (about half a millisecond of the query role's CPU a poll): the probe slowed what
 * it timed.
 */
const pollIntervalFor = (targetP99Ms: number) => Math.max(POLL_INTERVAL_MS, Math.round(targetP99Ms / 50));

export type Phase = 'load' | 'catch-up' | 'paced';

export interface LagMeasurement {
  readonly setup: string;
  /** The bound on the p99 lag for this setup. */
  readonly targetP99Ms: number;
  readonly capacity: ClosedLoopResult;
  /** How long the pipeline took to catch up after the capacity run. */
  readonly drainMs: number;
  /** Items acknowledged during the capacity run (warm-up included) per second until they were all processed. */
  readonly endToEndRate: number;
  readonly paced: PacedRun;
  /** CPU by phase of the processes asked for, and of the whole machine (100 = one core). */
  readonly cpu: Readonly<Record<Phase, Record<string, number | null>>>;
}

/**
 * Issue 3. Capacity first (closed loop, autocannon), then single items at half of it from this
 * process, following 1 in 20 to `processed`. `ingest` takes POST /ingest and `query` answers
 * GET /query/{id}: the same process when embedded. A pipeline that fell behind during the capacity
 * run is paced at half of what it sustained end to end instead, since half the ingest capacity
 * would only measure a growing queue; `pacedAt: 'end-to-end'` always does (issue 11 sets the
 * distributed target at half the end-to-end rate). `watch` names processes whose CPU is sampled in
 * each phase.
 */
export async function capacityThenLag(
  ctx: BenchContext,
  setup: string,
  targets: { ingest: Target; query: Target },
  run: { warmupSec: number; durationSec: number },
  options: {
    readonly watch?: Readonly<Record<string, number>>;
    readonly targetP99Ms?: number;
    readonly pacedAt?: 'capacity' | 'end-to-end';
  } = {},
): Promise<LagMeasurement> {
  const { watch = {}, targetP99Ms = EMBEDDED_TARGET_P99_MS, pacedAt = 'capacity' } = options;
  const body = ingestBody();
  const connections = ctx.options.connections;
  const loadStart = performance.now();
  let cpu = sampleCpuOf(watch);
  const capacity = await closedLoop(ctx, targets.ingest, { label: `${setup}: capacity`, path: '/ingest', body, connections, ...run });
  const load = cpu.stop();
  const ingest = new JsonClient(targets.ingest.baseUrl, targets.ingest.headers, MAX_IN_FLIGHT);
  const query = new JsonClient(targets.query.baseUrl, targets.query.headers, 16);
  try {
    ctx.progress(`${setup}: waiting for the pipeline to catch up`);
    cpu = sampleCpuOf(watch);
    const drainMs = await waitForPipeline(ingest, query, body);
    const catchUp = cpu.stop();
    const acknowledged = (capacity.warmup?.count2xx ?? 0) + capacity.load.count2xx;
    const endToEndRate = acknowledged / ((performance.now() - loadStart) / 1000);
    const sustained = pacedAt === 'end-to-end' || drainMs > KEPT_UP_MS ? endToEndRate : capacity.load.requestsPerSecAvg;
    const ratePerSec = Math.max(1, Math.round(sustained * RATE_SHARE));
    ctx.progress(`${setup}: ${ratePerSec} items/s for ${LAG_SECONDS} s, following 1 in ${SAMPLE_EVERY} to processed`);
    cpu = sampleCpuOf(watch);
    const paced = await pacedIngest({
      ingest,
      query,
      body,
      ratePerSec,
      durationSec: LAG_SECONDS,
      sampleEvery: SAMPLE_EVERY,
      maxInFlight: MAX_IN_FLIGHT,
      pollIntervalMs: pollIntervalFor(targetP99Ms),
    });
    assertAlive(targets.ingest);
    assertAlive(targets.query);
    return { setup, targetP99Ms, capacity, drainMs, endToEndRate, paced, cpu: { load, 'catch-up': catchUp, paced: cpu.stop() } };
  } finally {
    await Promise.all([ingest.close(), query.close()]);
  }
}

export const lagColumns: readonly Column<LagMeasurement>[] = [
  { header: 'setup', value: (m) => m.setup, align: 'left' },
  { header: 'capacity req/s', value: (m) => m.capacity.load.requestsPerSecAvg },
  { header: 'catch-up ms', value: (m) => m.drainMs },
  { header: 'end-to-end /s', value: (m) => m.endToEndRate },
  { header: 'paced at /s', value: (m) => m.paced.targetRate },
  { header: 'achieved /s', value: (m) => m.paced.achievedRate },
  { header: 'samples', value: (m) => m.paced.lagsMs.length },
  { header: 'lag p50 ms', value: (m) => percentile(m.paced.lagsMs, 50), decimals: 1 },
  { header: 'lag p99 ms', value: (m) => percentile(m.paced.lagsMs, 99), decimals: 1 },
  { header: 'lag max ms', value: (m) => percentile(m.paced.lagsMs, 100), decimals: 1 },
  { header: 'bench CPU %', value: (m) => m.paced.benchCpuPercent },
  {
    header: 'p99 target',
    value: (m) => {
      const p99 = percentile(m.paced.lagsMs, 99);
      return p99 === null ? null : `≤ ${m.targetP99Ms} ms: ${p99 <= m.targetP99Ms ? 'met' : 'MISSED'}`;
    },
    align: 'left',
  },
];

/** Notes on a lag measurement; `failed` is true when a sampled item never reached `processed`. */
export function lagNotes(m: LagMeasurement): { notes: string[]; failed: boolean } {
  const { paced } = m;
  const notes = loadNotes(m.capacity);
  if (paced.rejected > 0) notes.push(`${m.setup}: ${paced.rejected} paced request(s) answered other than 201.`);
  if (paced.failedRequests > 0) notes.push(`${m.setup}: ${paced.failedRequests} paced request(s) got no answer.`);
  if (paced.skipped > 0) {
    notes.push(
      `${m.setup}: ${paced.skipped} send slot(s) skipped with ${MAX_IN_FLIGHT} requests in flight: the server fell behind the rate.`,
    );
  }
  const failed = paced.timedOut > 0 || paced.notProcessed > 0 || paced.lagsMs.length === 0;
  if (paced.timedOut > 0) notes.push(`${m.setup}: FAILED, ${paced.timedOut} sampled item(s) not processed within 30 s.`);
  if (paced.notProcessed > 0) notes.push(`${m.setup}: FAILED, ${paced.notProcessed} sampled item(s) ended invalid, failed or in an error.`);
  if (paced.lagsMs.length === 0) notes.push(`${m.setup}: FAILED, no item sampled.`);
  return { notes, failed };
}

export const lagExplanation = [
  `Lag: from the 201 of a single POST /ingest to the first GET /query/{id} that reports "processed" (polled every`,
  `${pollIntervalFor(EMBEDDED_TARGET_P99_MS)} ms embedded, ${pollIntervalFor(DISTRIBUTED_TARGET_P99_MS)} ms distributed: a fiftieth of the target), for 1 in ${SAMPLE_EVERY} items sent at ${RATE_SHARE * 100} % of the capacity`,
  `measured just before (open loop from the bench process, keep-alive, at most ${MAX_IN_FLIGHT} in flight), ${LAG_SECONDS} s. The polls add`,
  `load of their own. "catch-up": how long the pipeline took to finish the capacity run's backlog; "end-to-end": items of the`,
  `capacity run (warm-up included) per second from its start until all were processed.`,
  `When catch-up took over ${KEPT_UP_MS / 1000} s (the pipeline fell behind ingest), the pace is ${RATE_SHARE * 100} % of end-to-end instead of capacity;`,
  `the distributed stack is always paced at ${RATE_SHARE * 100} % of its end-to-end rate, where issue 11 sets its target.`,
  `Targets: p99 ≤ ${EMBEDDED_TARGET_P99_MS} ms embedded (issue 10), ≤ ${DISTRIBUTED_TARGET_P99_MS} ms for the distributed stack at half its end-to-end rate (issue 11).`,
];

export const endToEndLag: Scenario = {
  name: 'lag',
  async run(ctx): Promise<ScenarioReport> {
    const durability = ctx.options.durabilities[0] ?? 'power-loss';
    const run = shortRun(ctx);
    const target = await startIntake(ctx, durability);
    const { result: measurement, notes: exit } = await whileRunning(ctx, target, () =>
      capacityThenLag(ctx, `embedded (${durability})`, { ingest: target, query: target }, run),
    );
    const { notes, failed } = lagNotes(measurement);
    return {
      title: `End-to-end lag, POST /ingest to "processed": capacity over ${run.durationSec} s (${ctx.options.connections} connections), then ${RATE_SHARE * 100} % of it`,
      tables: [table(lagColumns, [measurement])],
      notes: [...lagExplanation, ...notes, ...exit],
      ok: !failed,
    };
  },
};
