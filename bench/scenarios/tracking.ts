import { randomUUID } from 'node:crypto';
import { closedLoop, CPU_PER_ANSWER, loadNotes, milliseconds, shortRun } from '../lib/closed-loop.js';
import { microsPer } from '../lib/proc-sampler.js';
import { JsonClient, prop, type JsonResponse } from '../lib/http.js';
import { CATCH_UP_POLL_INTERVAL_MS, pollUntil, type PollOutcome } from '../lib/lag.js';
import { trackingEvent } from '../lib/payload.js';
import { percentile } from '../lib/stats.js';
import { table } from '../lib/table.js';
import { startIntake, whileRunning } from '../lib/targets.js';
import type { Scenario } from './types.js';

const PATH = '/api/v1/tracking/events';
const LAG_SAMPLES = 200;
const LAG_WORKERS = 4;

/** Sends one tracking event of a campaign of its own and waits until that campaign's attribution counts it. */
async function attributionLag(client: JsonClient, timeoutMs?: number, intervalMs?: number): Promise<PollOutcome> {
  const campaign = `bench-${randomUUID()}`;
  await client.expect(201, 'POST', PATH, trackingEvent(campaign, `v-${randomUUID()}`));
  const counted = (response: JsonResponse) => {
    if (response.status === 404) return false;
    if (response.status !== 200) return `HTTP ${response.status}`;
    return prop(response.body, 'interactions', 'click') === 1;
  };
  return pollUntil(client, `/api/v1/attribution/campaigns/${campaign}`, counted, performance.now(), timeoutMs, intervalMs);
}

/** Issue 7: tracking throughput, then the lag from a recorded tracking event to its attribution. */
export const tracking: Scenario = {
  name: 'tracking',
  async run(ctx) {
    const durability = ctx.options.durabilities[0] ?? 'power-loss';
    const run = shortRun(ctx);
    const connections = ctx.options.connections;
    const target = await startIntake(ctx, durability);
    const { result, notes: exit } = await whileRunning(ctx, target, async () => {
      const label = `${target.name}: ${PATH}`;
      // A fresh visitor per request: [<id>] in the body becomes a UUID.
      const load = await closedLoop(ctx, target, { label, path: PATH, body: trackingEvent(), connections, uniqueIds: true, ...run });
      const client = new JsonClient(target.baseUrl, target.headers, LAG_WORKERS);
      try {
        ctx.progress(`${target.name}: waiting for attribution to catch up`);
        const start = performance.now();
        const probe = await attributionLag(client, 300_000, CATCH_UP_POLL_INTERVAL_MS);
        if (typeof probe !== 'number') throw new Error(`attribution did not catch up with the load: ${probe}`);
        const catchUpMs = performance.now() - start;
        ctx.progress(`${target.name}: attribution lag of ${LAG_SAMPLES} events, ${LAG_WORKERS} at a time`);
        const outcomes: PollOutcome[] = [];
        let started = 0;
        const worker = async () => {
          while (started < LAG_SAMPLES) {
            started += 1;
            outcomes.push(await attributionLag(client));
          }
        };
        await Promise.all(Array.from({ length: LAG_WORKERS }, worker));
        return { load, catchUpMs, outcomes };
      } finally {
        await client.close();
      }
    });

    const { load } = result.load;
    const lags = result.outcomes.filter((o): o is number => typeof o === 'number');
    const failures = result.outcomes.filter((o): o is string => typeof o === 'string');
    return {
      title: `Tracking: POST ${PATH}, ${connections} connections, ${run.durationSec} s after ${run.warmupSec} s warm-up (${durability}); then attribution lag`,
      tables: [
        table(
          [
            { header: 'req/s', value: () => load.requestsPerSecAvg },
            { header: 'p50 ms', value: () => milliseconds(load.latencyP50Ms), align: 'right' },
            { header: 'p99 ms', value: () => milliseconds(load.latencyP99Ms), align: 'right' },
            { header: 'server CPU %', value: () => result.load.serverCpuPercent },
            { header: CPU_PER_ANSWER, value: () => microsPer(result.load.serverThreads, result.load.load.count2xx), align: 'right' },
            { header: 'catch-up ms', value: () => result.catchUpMs },
            { header: 'lag samples', value: () => lags.length },
            { header: 'lag p50 ms', value: () => percentile(lags, 50), decimals: 1 },
            { header: 'lag p99 ms', value: () => percentile(lags, 99), decimals: 1 },
            { header: 'lag max ms', value: () => percentile(lags, 100), decimals: 1 },
          ],
          [result],
        ),
      ],
      notes: [
        `Attribution lag: ${LAG_SAMPLES} tracking events, ${LAG_WORKERS} senders one after another, each of a campaign of its own; from its 201 to the first`,
        `GET /api/v1/attribution/campaigns/{id} (polled every 2 ms) that counts it. "catch-up": until attribution had finished the load's backlog.`,
        ...(failures.length > 0 ? [`FAILED: ${failures.length} event(s) never counted: ${[...new Set(failures)].join(', ')}.`] : []),
        ...loadNotes(result.load),
        ...exit,
      ],
      ok: failures.length === 0 && load.count2xx > 0,
    };
  },
};
