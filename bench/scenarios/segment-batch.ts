import { closedLoop, CPU_PER_EVENT, loadNotes, milliseconds, shortRun } from '../lib/closed-loop.js';
import { microsPer } from '../lib/proc-sampler.js';
import { JsonClient, prop } from '../lib/http.js';
import { sustainedAfterLoad } from '../lib/lag.js';
import { table } from '../lib/table.js';
import { startIntake, whileRunning } from '../lib/targets.js';
import { SUSTAINED_NOTE } from './batch.js';
import type { Durability } from '../lib/targets.js';
import type { BenchContext, Scenario } from './types.js';

const MESSAGES_PER_REQUEST = 100;
const CONNECTIONS = 16;
const PATH = '/v1/batch';
const APP = 'segment-bench';

/** What the batch's track messages are: each a conversion that attribution credits, or none. */
interface MessageKind {
  readonly label: string;
  readonly event: string;
  readonly properties: (i: number) => Record<string, unknown>;
}

const KINDS: readonly MessageKind[] = [
  {
    label: 'Order Completed (each a conversion)',
    event: 'Order Completed',
    properties: (i) => ({ order_id: `o-${i}`, revenue: 55 + i, currency: 'EUR', products: [{ sku: 'sku-1', quantity: 1, price: 55 }] }),
  },
  {
    label: 'Product Viewed (no conversion)',
    event: 'Product Viewed',
    properties: (i) => ({ product_id: `p-${i}`, price: 55 + i, currency: 'EUR', category: 'shoes', position: i % 10 }),
  },
];

/**
 * A batch as @segment/analytics-node sends it: track messages, each with its own messageId (`[<id>]`
 * becomes a fresh UUID per request), so every message is stored, none deduplicated.
 */
function segmentBatch(kind: MessageKind): string {
  const sentAt = new Date().toISOString();
  const batch = Array.from({ length: MESSAGES_PER_REQUEST }, (_, i) => ({
    type: 'track',
    event: kind.event,
    userId: `user-${i % 10}`,
    anonymousId: `anon-${i % 10}`,
    messageId: `[<id>]-${i}`,
    timestamp: sentAt,
    properties: kind.properties(i),
    context: { library: { name: 'analytics-node-next', version: 'latest' } },
    _metadata: { nodeVersion: process.versions.node, jsRuntime: 'node' },
  }));
  return JSON.stringify({ batch, sentAt });
}

/** One fresh Intake under batches of one kind: what was acknowledged, what the pipeline sustained. */
async function measure(ctx: BenchContext, durability: Durability, kind: MessageKind, run: ReturnType<typeof shortRun>) {
  const body = segmentBatch(kind);
  const target = await startIntake(ctx, durability, { name: `Intake (${durability}), ${kind.event}` });
  const { result, notes } = await whileRunning(ctx, target, async () => {
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
  return { kind, bytes: Buffer.byteLength(body), ...result, notes };
}

/** Issue 12: POST /v1/batch (Segment's HTTP Tracking API) with 100 messages a request; compare with `batch`. */
export const segmentBatchIngestion: Scenario = {
  name: 'segment-batch',
  async run(ctx) {
    const durability = ctx.options.durabilities[0] ?? 'power-loss';
    const run = shortRun(ctx);
    const results: Array<Awaited<ReturnType<typeof measure>>> = [];
    for (const kind of KINDS) results.push(await measure(ctx, durability, kind, run));
    const eventsPerSec = (result: (typeof results)[number]) =>
      (result.load.load.count2xx / result.load.load.durationSec) * MESSAGES_PER_REQUEST;
    const acceptedAll = results.every((result) => result.accepted === MESSAGES_PER_REQUEST);
    return {
      title: `Segment batch: POST ${PATH}, ${MESSAGES_PER_REQUEST} messages a request, ${CONNECTIONS} connections, ${run.durationSec} s after ${run.warmupSec} s warm-up (${durability})`,
      tables: [
        table(
          [
            { header: 'track messages', value: (r) => r.kind.label },
            { header: 'bytes/request', value: (r) => r.bytes },
            { header: 'requests/s', value: (r) => r.load.load.requestsPerSecAvg },
            { header: 'events/s', value: eventsPerSec },
            { header: 'sustained /s', value: (r) => r.sustained.eventsPerSec },
            { header: 'catch-up s', value: (r) => (r.sustained.catchUpMs / 1000).toFixed(1), align: 'right' },
            { header: 'p50 ms', value: (r) => milliseconds(r.load.load.latencyP50Ms), align: 'right' },
            { header: 'p99 ms', value: (r) => milliseconds(r.load.load.latencyP99Ms), align: 'right' },
            { header: 'server CPU %', value: (r) => r.load.serverCpuPercent },
            {
              header: CPU_PER_EVENT,
              value: (r) => microsPer(r.load.serverThreads, r.load.load.count2xx * MESSAGES_PER_REQUEST),
              align: 'right',
            },
          ],
          results,
        ),
      ],
      notes: [
        `events/s = ${MESSAGES_PER_REQUEST} × 2xx answers per second; target: at least the events/s of the \`batch\` scenario (POST /api/ingest/{app}/batch).`,
        'Every message has its own messageId, so each is checked against the idempotency log and stored. Each row is a fresh Intake;',
        "an Order Completed with revenue is a conversion, which attribution credits to the user's touches (issue 12), a Product Viewed is not.",
        ...SUSTAINED_NOTE,
        ...results.map((r) =>
          r.accepted === MESSAGES_PER_REQUEST
            ? `${r.kind.event}: a probe batch answered accepted: ${MESSAGES_PER_REQUEST} of ${MESSAGES_PER_REQUEST}.`
            : `FAILED: ${r.kind.event}: a probe batch answered accepted: ${String(r.accepted)} of ${MESSAGES_PER_REQUEST}.`,
        ),
        ...results.flatMap((r) => [...loadNotes(r.load), ...r.notes]),
      ],
      ok: acceptedAll && results.every((r) => r.load.load.count2xx > 0),
    };
  },
};
