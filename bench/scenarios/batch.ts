import { closedLoop, CPU_PER_EVENT, loadNotes, milliseconds, shortRun } from '../lib/closed-loop.js';
import { microsPer } from '../lib/proc-sampler.js';
import { JsonClient, prop } from '../lib/http.js';
import { sustainedAfterLoad } from '../lib/lag.js';
import { appEvent } from '../lib/payload.js';
import { table } from '../lib/table.js';
import { startIntake, whileRunning } from '../lib/targets.js';
import type { Scenario } from './types.js';

const EVENTS_PER_REQUEST = 100;
const CONNECTIONS = 16;
const PATH = '/api/ingest/shop/batch';

/** Shared with the Segment batch, whose rate compares with this one. */
export const SUSTAINED_NOTE = [
  '"sustained": the events acknowledged from the start of the warm-up until the end of the measured run, divided by the time',
  'from that start until the pipeline had processed them all ("catch-up": how long that took after the load ended).',
  'A batch load is acknowledged faster than the subscribers work through it: the acknowledged rate absorbs a burst,',
  'the sustained rate is what the whole pipeline keeps up with.',
];

/** Issue 5: POST /api/ingest/{app_id}/batch with 100 events a request. */
export const batchIngestion: Scenario = {
  name: 'batch',
  async run(ctx) {
    const durability = ctx.options.durabilities[0] ?? 'power-loss';
    const run = shortRun(ctx);
    const body = JSON.stringify({ events: Array.from({ length: EVENTS_PER_REQUEST }, () => appEvent()) });
    const target = await startIntake(ctx, durability);
    const { result, notes: exit } = await whileRunning(ctx, target, async () => {
      // One request first, to check that every event of a batch is accepted, not just that it answers 200.
      const client = new JsonClient(target.baseUrl, target.headers);
      const receipt = await client.expect(200, 'POST', PATH, body).finally(() => client.close());
      const accepted = prop(receipt, 'accepted');
      const loadStart = performance.now();
      const load = await closedLoop(ctx, target, { label: `${target.name}: batches`, path: PATH, body, connections: CONNECTIONS, ...run });
      ctx.progress(`${target.name}: waiting for the pipeline to catch up`);
      const acknowledged = ((load.warmup?.count2xx ?? 0) + load.load.count2xx) * EVENTS_PER_REQUEST;
      const sustained = await sustainedAfterLoad(target, loadStart, acknowledged);
      return { accepted, load, sustained };
    });
    const { load } = result.load;
    const eventsPerSec = (load.count2xx / load.durationSec) * EVENTS_PER_REQUEST;
    const acceptedAll = result.accepted === EVENTS_PER_REQUEST;
    return {
      title: `Batch ingestion: POST ${PATH}, ${EVENTS_PER_REQUEST} events a request (${Buffer.byteLength(body).toLocaleString('en-US')} bytes), ${CONNECTIONS} connections, ${run.durationSec} s after ${run.warmupSec} s warm-up (${durability})`,
      tables: [
        table(
          [
            { header: 'requests/s', value: () => load.requestsPerSecAvg },
            { header: 'events/s', value: () => eventsPerSec },
            { header: 'sustained /s', value: () => result.sustained.eventsPerSec },
            { header: 'catch-up s', value: () => (result.sustained.catchUpMs / 1000).toFixed(1), align: 'right' },
            { header: 'p50 ms', value: () => milliseconds(load.latencyP50Ms), align: 'right' },
            { header: 'p99 ms', value: () => milliseconds(load.latencyP99Ms), align: 'right' },
            { header: 'server CPU %', value: () => result.load.serverCpuPercent },
            {
              header: CPU_PER_EVENT,
              value: () => microsPer(result.load.serverThreads, load.count2xx * EVENTS_PER_REQUEST),
              align: 'right',
            },
          ],
          [result],
        ),
      ],
      notes: [
        `events/s = ${EVENTS_PER_REQUEST} × 2xx answers per second of the measured run; compare with the single-item req/s of the other scenarios.`,
        ...SUSTAINED_NOTE,
        acceptedAll
          ? `A probe batch answered accepted: ${EVENTS_PER_REQUEST} of ${EVENTS_PER_REQUEST}.`
          : `FAILED: a probe batch answered accepted: ${String(result.accepted)} of ${EVENTS_PER_REQUEST}.`,
        ...loadNotes(result.load),
        ...exit,
      ],
      ok: acceptedAll && load.count2xx > 0,
    };
  },
};
