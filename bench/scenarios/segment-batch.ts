import { closedLoop, CPU_PER_EVENT, loadNotes, milliseconds, shortRun } from '../lib/closed-loop.js';
import { microsPer } from '../lib/proc-sampler.js';
import { JsonClient, prop } from '../lib/http.js';
import { sustainedAfterLoad } from '../lib/lag.js';
import { table } from '../lib/table.js';
import { startIntake, whileRunning } from '../lib/targets.js';
import { SUSTAINED_NOTE } from './batch.js';
import type { Scenario } from './types.js';

const MESSAGES_PER_REQUEST = 100;
const CONNECTIONS = 16;
const PATH = '/v1/batch';
const APP = 'segment-bench';

/**
 * A batch as @segment/analytics-node sends it: track messages of an order, each with its own
 * messageId (`[<id>]` becomes a fresh UUID per request), so every message is stored, none deduplicated.
 */
function segmentBatch(): string {
  const sentAt = new Date().toISOString();
  const batch = Array.from({ length: MESSAGES_PER_REQUEST }, (_, i) => ({
    type: 'track',
    event: 'Order Completed',
    userId: `user-${i % 10}`,
    anonymousId: `anon-${i % 10}`,
    messageId: `[<id>]-${i}`,
    timestamp: sentAt,
    properties: { order_id: `o-${i}`, revenue: 55 + i, currency: 'EUR', products: [{ sku: 'sku-1', quantity: 1, price: 55 }] },
    context: { library: { name: 'analytics-node-next', version: 'latest' } },
    _metadata: { nodeVersion: process.versions.node, jsRuntime: 'node' },
  }));
  return JSON.stringify({ batch, sentAt });
}

/** Issue 12: POST /v1/batch (Segment's HTTP Tracking API) with 100 messages a request; compare with `batch`. */
export const segmentBatchIngestion: Scenario = {
  name: 'segment-batch',
  async run(ctx) {
    const durability = ctx.options.durabilities[0] ?? 'power-loss';
    const run = shortRun(ctx);
    const body = segmentBatch();
    const target = await startIntake(ctx, durability);
    const { result, notes: exit } = await whileRunning(ctx, target, async () => {
      const admin = new JsonClient(target.baseUrl, target.headers);
      await admin.expect(201, 'POST', '/api/applications', { app_id: APP, name: APP });
      const writeKey = String(prop(await admin.expect(201, 'POST', `/api/applications/${APP}/keys`, { name: 'bench' }), 'key'));
      await admin.close();
      // The write key as Basic auth username, as the SDKs send it; the admin token is no write key.
      const sdk = { ...target, headers: { authorization: `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}` } };
      const client = new JsonClient(target.baseUrl, sdk.headers);
      const probe = await client.expect(200, 'POST', PATH, body.replaceAll('[<id>]', 'probe')).finally(() => client.close());
      const receipts = (prop(probe, 'receipts') as Array<{ status: string }> | undefined) ?? [];
      const accepted = receipts.filter((r) => r.status === 'accepted').length;
      const loadStart = performance.now();
      const load = await closedLoop(ctx, sdk, {
        label: `${target.name}: segment batches`,
        path: PATH,
        body,
        connections: CONNECTIONS,
        uniqueIds: true,
        ...run,
      });
      ctx.progress(`${target.name}: waiting for the pipeline to catch up`);
      const acknowledged = ((load.warmup?.count2xx ?? 0) + load.load.count2xx) * MESSAGES_PER_REQUEST;
      const sustained = await sustainedAfterLoad(target, loadStart, acknowledged);
      return { accepted, load, sustained };
    });
    const { load } = result.load;
    const eventsPerSec = (load.count2xx / load.durationSec) * MESSAGES_PER_REQUEST;
    const acceptedAll = result.accepted === MESSAGES_PER_REQUEST;
    return {
      title: `Segment batch: POST ${PATH}, ${MESSAGES_PER_REQUEST} messages a request (${Buffer.byteLength(body).toLocaleString('en-US')} bytes), ${CONNECTIONS} connections, ${run.durationSec} s after ${run.warmupSec} s warm-up (${durability})`,
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
              value: () => microsPer(result.load.serverThreads, load.count2xx * MESSAGES_PER_REQUEST),
              align: 'right',
            },
          ],
          [result],
        ),
      ],
      notes: [
        `events/s = ${MESSAGES_PER_REQUEST} × 2xx answers per second; target: at least the events/s of the \`batch\` scenario (POST /api/ingest/{app}/batch).`,
        'Every message has its own messageId, so each is checked against the idempotency log and stored.',
        ...SUSTAINED_NOTE,
        acceptedAll
          ? `A probe batch answered accepted: ${MESSAGES_PER_REQUEST} of ${MESSAGES_PER_REQUEST}.`
          : `FAILED: a probe batch answered accepted: ${String(result.accepted)} of ${MESSAGES_PER_REQUEST}.`,
        ...loadNotes(result.load),
        ...exit,
      ],
      ok: acceptedAll && load.count2xx > 0,
    };
  },
};
