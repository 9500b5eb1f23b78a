import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startLoad, type LoadResult } from '../lib/autocannon.js';
import type { ExitInfo } from '../lib/children.js';
import { CPU_PER_ANSWER } from '../lib/closed-loop.js';
import { ingestBody } from '../lib/payload.js';
import { microsPer, sampleMachineCpu, sampleProcess, type ProcSample } from '../lib/proc-sampler.js';
import { table, type Column } from '../lib/table.js';
import { assertAlive, startFastifyFloor, startIntake, startRawServer, stopTarget, type Target } from '../lib/targets.js';
import type { BenchContext, Scenario, ScenarioReport } from './types.js';
import { OPTIONAL_CONTEXTS } from '../../src/app/optional-contexts.js';

interface Measurement {
  readonly target: string;
  readonly warmup: LoadResult;
  readonly load: LoadResult;
  readonly server: ProcSample;
  readonly loader: ProcSample;
  /** CPU used by everything but the server and the load generator (100 = one core); null without /proc. */
  readonly otherCpuPercent: number | null;
  /** Only for Intake: what it holds after the load. */
  readonly storage: StorageCheck | null;
  readonly exit: ExitInfo;
  readonly logFindings: Target['logFindings'];
}

interface StorageCheck {
  /** GET /ingest/all?limit=1 answered 200 with one item. */
  readonly sanityOk: boolean;
  readonly sanityDetail: string;
  /** Items counted by paging through GET /ingest/all. */
  readonly stored: number;
}

const MB = 1024 * 1024;
const PAGE_SIZE = 1000;
/** The bench's own process (sampling, bookkeeping) and the OS account for a few percent; more means a neighbour. */
const OTHER_CPU_WARNING_PERCENT = 15;

/**
 * POST /ingest throughput: the raw node:http ceiling, then Intake once per durability mode, each
 * under the same closed-loop load (a fixed number of connections, each sending its next request as
 * soon as the previous one is answered).
 */
export const ingestThroughput: Scenario = {
  name: 'throughput',
  async run(ctx) {
    const bodyFile = join(ctx.tmpDir, 'ingest-body.json');
    const body = ingestBody(400);
    writeFileSync(bodyFile, body);

    const measurements: Measurement[] = [];
    measurements.push(await measure(ctx, () => startRawServer(ctx), bodyFile, false));
    measurements.push(await measure(ctx, () => startFastifyFloor(ctx), bodyFile, false));
    for (const durability of ctx.options.durabilities) {
      measurements.push(await measure(ctx, () => startIntake(ctx, durability), bodyFile, true));
    }
    // The ingest path alone: every optional context left out, so only the edge and the durable append remain.
    const [first] = ctx.options.durabilities;
    if (first) {
      const alone = { name: `Intake, ingestion alone (${first})`, env: { INTAKE_DISABLE: OPTIONAL_CONTEXTS.join(',') } };
      measurements.push(await measure(ctx, () => startIntake(ctx, first, alone), bodyFile, true));
    }
    return report(ctx, measurements, Buffer.byteLength(body));
  },
};

async function measure(ctx: BenchContext, start: () => Promise<Target>, bodyFile: string, checkStorage: boolean): Promise<Measurement> {
  const target = await start();
  let measured: Omit<Measurement, 'exit'>;
  try {
    measured = await loadAndCheck(ctx, target, bodyFile, checkStorage);
  } catch (error) {
    await stopTarget(ctx, target);
    throw error;
  }
  ctx.progress(`${target.name}: stopping`);
  return { ...measured, exit: await stopTarget(ctx, target) };
}

async function loadAndCheck(
  ctx: BenchContext,
  target: Target,
  bodyFile: string,
  checkStorage: boolean,
): Promise<Omit<Measurement, 'exit'>> {
  const { connections, durationSec, warmupSec } = ctx.options;
  const loadOptions = (seconds: number) => ({
    url: `${target.baseUrl}/ingest`,
    connections,
    durationSec: seconds,
    method: 'POST' as const,
    bodyFile,
    headers: { ...target.headers, 'content-type': 'application/json' },
  });

  // Warm-up: lets V8 optimise the hot paths and SQLite grow its file and caches. Its figures are
  // discarded; only its 201 count is kept, to check afterwards that every acknowledged item is stored.
  ctx.progress(`${target.name}: warm-up ${warmupSec} s`);
  const warmup = await startLoad(ctx.children, ctx.repoRoot, loadOptions(warmupSec)).result;
  assertAlive(target);

  ctx.progress(`${target.name}: measuring ${durationSec} s, ${connections} connections`);
  const machineSampler = sampleMachineCpu();
  const serverSampler = sampleProcess(target.child.pid);
  const run = startLoad(ctx.children, ctx.repoRoot, loadOptions(durationSec));
  const loaderSampler = sampleProcess(run.child.pid);
  const outcome = await run.result.then(
    (load) => ({ load }),
    (error: unknown) => ({ error }),
  );
  // Stopped as soon as the load ends, so that the sampled window is the load itself (and before any
  // rethrow, so that no polling timer outlives a failure).
  const server = serverSampler.stop();
  const loader = loaderSampler.stop();
  const machine = machineSampler.stop();
  const otherCpuPercent =
    machine === null || server.cpuPercent === null || loader.cpuPercent === null
      ? null
      : Math.max(0, machine - server.cpuPercent - loader.cpuPercent);
  if ('error' in outcome) throw outcome.error;
  assertAlive(target);

  const storage = checkStorage ? await checkStored(ctx, target) : null;
  return { target: target.name, warmup, load: outcome.load, server, loader, otherCpuPercent, storage, logFindings: target.logFindings };
}

/** Reads Intake's data back through its API: one item (the sanity check), then a count of all of them. */
async function checkStored(ctx: BenchContext, target: Target): Promise<StorageCheck> {
  const get = async (path: string) => {
    const response = await fetch(`${target.baseUrl}${path}`, { headers: target.headers, signal: AbortSignal.timeout(30_000) });
    const text = await response.text();
    return { status: response.status, text };
  };

  const first = await get('/ingest/all?limit=1');
  const firstPage = first.status === 200 ? parsePage(first.text) : null;
  const sanityOk = firstPage !== null && firstPage.count === 1 && firstPage.firstPartnerId === 'partner123';
  const sanityDetail = sanityOk
    ? 'GET /ingest/all?limit=1 -> 200, 1 item of partner123'
    : `GET /ingest/all?limit=1 -> ${first.status}: ${first.text.slice(0, 300)}`;

  ctx.progress(`${target.name}: counting stored items through GET /ingest/all`);
  let stored = 0;
  let cursor: string | null = null;
  do {
    const page = await get(`/ingest/all?limit=${PAGE_SIZE}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`);
    const parsed = page.status === 200 ? parsePage(page.text) : null;
    if (parsed === null) throw new Error(`counting stored items: GET /ingest/all answered ${page.status}: ${page.text.slice(0, 300)}`);
    stored += parsed.count;
    cursor = parsed.nextCursor;
  } while (cursor !== null);

  return { sanityOk, sanityDetail, stored };
}

function parsePage(text: string): { count: number; nextCursor: string | null; firstPartnerId: unknown } | null {
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed !== 'object' || parsed === null || !('items' in parsed) || !Array.isArray(parsed.items)) return null;
  const nextCursor = 'next_cursor' in parsed && typeof parsed.next_cursor === 'string' ? parsed.next_cursor : null;
  const firstItem: unknown = parsed.items[0];
  const firstPartnerId =
    typeof firstItem === 'object' && firstItem !== null && 'partner_id' in firstItem ? firstItem.partner_id : undefined;
  return { count: parsed.items.length, nextCursor, firstPartnerId };
}

function report(ctx: BenchContext, measurements: readonly Measurement[], bodyBytes: number): ScenarioReport {
  const { connections, durationSec, warmupSec } = ctx.options;
  const ceiling = measurements[0]?.load.requestsPerSecAvg ?? 0;
  const notes: string[] = [];
  let ok = true;

  const throughputColumns: Column<Measurement>[] = [
    { header: 'target', value: (m) => m.target, align: 'left' },
    { header: 'req/s', value: (m) => m.load.requestsPerSecAvg },
    { header: 'p50 ms', value: (m) => milliseconds(m.load.latencyP50Ms), align: 'right' },
    { header: 'p99 ms', value: (m) => milliseconds(m.load.latencyP99Ms), align: 'right' },
    { header: 'non-2xx', value: (m) => m.load.non2xx },
    { header: 'errors', value: (m) => m.load.errors },
    { header: 'peak RSS MB', value: (m) => (m.server.peakRssBytes === null ? null : m.server.peakRssBytes / MB), decimals: 1 },
    { header: 'server CPU %', value: (m) => m.server.cpuPercent },
    { header: CPU_PER_ANSWER, value: (m) => microsPer(m.server.threads, m.load.count2xx), align: 'right' },
    { header: 'loader CPU %', value: (m) => m.loader.cpuPercent },
    { header: 'other CPU %', value: (m) => m.otherCpuPercent },
    {
      header: '% of ceiling',
      value: (m) => (ceiling > 0 ? `${((m.load.requestsPerSecAvg / ceiling) * 100).toFixed(1)} %` : null),
      align: 'right',
    },
  ];

  const checked = measurements.filter((m): m is Measurement & { storage: StorageCheck } => m.storage !== null);
  const storageColumns: Column<(typeof checked)[number]>[] = [
    { header: 'target', value: (m) => m.target, align: 'left' },
    { header: '201s warm-up', value: (m) => m.warmup.statusCodes['201'] ?? 0 },
    { header: '201s measured', value: (m) => m.load.statusCodes['201'] ?? 0 },
    { header: 'items stored', value: (m) => m.storage.stored },
    { header: 'stored - 201s', value: (m) => m.storage.stored - acknowledged(m) },
    { header: 'check', value: (m) => (m.storage.sanityOk && m.storage.stored >= acknowledged(m) ? 'ok' : 'FAILED'), align: 'left' },
  ];

  for (const m of measurements) {
    if (m.load.count2xx === 0) {
      ok = false;
      notes.push(`${m.target}: no 2xx response at all during the measured run.`);
    }
    const unexpected = Object.entries(m.load.statusCodes).filter(([code]) => !code.startsWith('2'));
    if (unexpected.length > 0) {
      notes.push(`${m.target}: non-2xx responses by status: ${unexpected.map(([code, count]) => `${code} x${count}`).join(', ')}.`);
    }
    if (m.otherCpuPercent !== null && m.otherCpuPercent > OTHER_CPU_WARNING_PERCENT) {
      notes.push(
        `WARNING ${m.target}: other processes used ${m.otherCpuPercent.toFixed(0)} % of a core during the measured run; ` +
          'its figures understate this machine. Rerun on a quiet machine.',
      );
    }
    if (m.load.errors > 0) notes.push(`${m.target}: ${m.load.errors} connection errors (${m.load.timeouts} of them timeouts).`);
    if (m.exit.code !== 0) notes.push(`${m.target}: exited with ${m.exit.signal ?? `code ${m.exit.code}`} on SIGTERM (expected code 0).`);
    if (m.logFindings.count > 0) {
      notes.push(
        `${m.target}: ${m.logFindings.count} log line(s) at warn or above, e.g.:`,
        ...m.logFindings.samples.map((line) => `    ${line}`),
      );
    }
    if (m.storage !== null) {
      if (!m.storage.sanityOk) {
        ok = false;
        notes.push(`${m.target}: sanity read FAILED: ${m.storage.sanityDetail}.`);
      }
      const missing = acknowledged(m) - m.storage.stored;
      if (missing > 0) {
        ok = false;
        notes.push(`${m.target}: ${missing} item(s) answered 201 are NOT stored.`);
      }
    }
  }

  return {
    title: `POST /ingest throughput: ${connections} connections, ${durationSec} s measured after a ${warmupSec} s warm-up, ${bodyBytes}-byte JSON body`,
    tables: [
      table(throughputColumns, measurements),
      table(
        storageColumns,
        checked,
        'Read-back after the load (every 201 must be stored; a few more may be, from requests cut off when autocannon stopped):',
      ),
    ],
    notes: [
      "req/s is autocannon's per-second average; p50/p99 are over all responses, at autocannon's 1 ms resolution. Peak RSS and CPU are sampled",
      'from /proc every 200 ms during the measured run (CPU: 100 % = one core; "other" = the rest of the machine, the',
      'bench process included). Server and loader share this machine, so the ceiling is that of node:http on this host',
      'with autocannon competing for the same cores. The framework floor is the same route on bare Fastify, which',
      'Intake is built on, with a JSON schema and nothing behind it: no single-request figure of Intake can pass it.',
      ...notes,
    ],
    ok,
  };
}

/** autocannon's latency histogram has a 1 ms resolution (values truncated): 0 means under a millisecond. */
function milliseconds(value: number): string {
  return value < 1 ? '<1' : value.toFixed(0);
}

function acknowledged(m: { warmup: LoadResult; load: LoadResult }): number {
  return (m.warmup.statusCodes['201'] ?? 0) + (m.load.statusCodes['201'] ?? 0);
}
