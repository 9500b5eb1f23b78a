import { setTimeout as sleep } from 'node:timers/promises';
import { JsonClient, prop, type JsonResponse } from './http.js';
import { ingestBody } from './payload.js';
import { sampleProcess } from './proc-sampler.js';

export const POLL_INTERVAL_MS = 2;
const POLL_TIMEOUT_MS = 30_000;
/** Slower polls while waiting for a backlog, so as not to slow down the very process that works through it. */
export const CATCH_UP_POLL_INTERVAL_MS = 50;

/** A lag in ms, or why the wait ended without one ('timeout', a status...). */
export type PollOutcome = number | string;

/**
 * Polls `GET path` every 2 ms until `check` says done (true) and returns the lag from `since` to
 * that answer. `check` returns false to keep polling, or a string: a final state that is not the one
 * awaited.
 */
export async function pollUntil(
  client: JsonClient,
  path: string,
  check: (response: JsonResponse) => boolean | string,
  since: number,
  timeoutMs = POLL_TIMEOUT_MS,
  intervalMs = POLL_INTERVAL_MS,
): Promise<PollOutcome> {
  for (;;) {
    const response = await client.request('GET', path);
    const now = performance.now();
    const verdict = check(response);
    if (verdict === true) return now - since;
    if (typeof verdict === 'string') return verdict;
    if (now - since > timeoutMs) return 'timeout';
    await sleep(intervalMs);
  }
}

/** Polls GET /query/{id} until the item is processed; 404 means not in the view yet. */
export function lagUntilProcessed(
  query: JsonClient,
  id: string,
  since: number,
  timeoutMs = POLL_TIMEOUT_MS,
  intervalMs = POLL_INTERVAL_MS,
): Promise<PollOutcome> {
  return pollUntil(
    query,
    `/query/${encodeURIComponent(id)}`,
    (response) => {
      if (response.status === 404) return false;
      if (response.status !== 200) return `HTTP ${response.status}`;
      const status = prop(response.body, 'status');
      return status === 'processed' ? true : status === 'invalid' || status === 'failed' ? status : false;
    },
    since,
    timeoutMs,
    intervalMs,
  );
}

/**
 * Waits until the pipeline has caught up with everything sent so far: a probe item sent now is
 * processed, and no subscriber /health/ready reports (embedded mode) lags behind the log's head.
 * Returns how long that took, in ms.
 */
export async function waitForPipeline(ingest: JsonClient, query: JsonClient, body: string, timeoutMs = 300_000): Promise<number> {
  const start = performance.now();
  const id = prop(await ingest.expect(201, 'POST', '/ingest', body), 'id');
  if (typeof id !== 'string') throw new Error('POST /ingest answered 201 without an id');
  const outcome = await lagUntilProcessed(query, id, start, timeoutMs, CATCH_UP_POLL_INTERVAL_MS);
  if (typeof outcome !== 'number') throw new Error(`the probe item ${id} was not processed: ${outcome}`);
  while (maxSubscriberLag((await query.request('GET', '/health/ready')).body) > 0) {
    if (performance.now() - start > timeoutMs) throw new Error(`subscribers still lag after ${timeoutMs} ms`);
    await sleep(CATCH_UP_POLL_INTERVAL_MS);
  }
  return performance.now() - start;
}

/** The largest `lag N` among the `subscriber:*` checks of a /health/ready body; 0 when there are none. */
export function maxSubscriberLag(readiness: unknown): number {
  const checks = prop(readiness, 'checks');
  if (typeof checks !== 'object' || checks === null) return 0;
  let max = 0;
  for (const [name, check] of Object.entries(checks)) {
    const detail = prop(check, 'detail');
    const match = name.startsWith('subscriber:') && typeof detail === 'string' ? /\blag (\d+)/.exec(detail) : null;
    if (match?.[1] !== undefined) max = Math.max(max, Number(match[1]));
  }
  return max;
}

export interface PacedSpec {
  /** Where POST /ingest goes; its pool size bounds the requests in flight. */
  readonly ingest: JsonClient;
  /** Where GET /query/{id} goes. */
  readonly query: JsonClient;
  readonly body: string;
  readonly ratePerSec: number;
  readonly durationSec: number;
  /** One acknowledged item in this many is followed to `processed`. */
  readonly sampleEvery: number;
  readonly maxInFlight: number;
  /** Between two polls of one sampled item: a lag reads at most this much high. */
  readonly pollIntervalMs?: number;
}

export interface PacedRun {
  readonly targetRate: number;
  /** 201s per second of the paced window. */
  readonly achievedRate: number;
  readonly acknowledged: number;
  /** Answers other than 201. */
  readonly rejected: number;
  /** Requests that got no answer (connection errors). */
  readonly failedRequests: number;
  /** Send slots dropped because `maxInFlight` requests were already waiting: the server fell behind the rate. */
  readonly skipped: number;
  readonly lagsMs: readonly number[];
  readonly timedOut: number;
  /** Sampled items that ended invalid or failed (or answered an error) instead of processed. */
  readonly notProcessed: number;
  /** This process's CPU (the load generator and the pollers) while sending; 100 = one core. */
  readonly benchCpuPercent: number | null;
}

/**
 * An open-loop load from this process: single POST /ingest requests started at a fixed rate,
 * whatever the answers' latency (up to `maxInFlight` outstanding), each sampled item then polled
 * until processed.
 */
export async function pacedIngest(spec: PacedSpec): Promise<PacedRun> {
  let acknowledged = 0;
  let rejected = 0;
  let failedRequests = 0;
  let skipped = 0;
  const sends = new Set<Promise<void>>();
  const polls: Promise<PollOutcome>[] = [];
  const send = async () => {
    try {
      const response = await spec.ingest.request('POST', '/ingest', spec.body);
      const at = performance.now();
      const id = prop(response.body, 'id');
      if (response.status !== 201 || typeof id !== 'string') {
        rejected += 1;
        return;
      }
      acknowledged += 1;
      if (acknowledged % spec.sampleEvery === 0) polls.push(lagUntilProcessed(spec.query, id, at, POLL_TIMEOUT_MS, spec.pollIntervalMs));
    } catch {
      failedRequests += 1;
    }
  };

  const bench = sampleProcess(process.pid);
  const start = performance.now();
  const end = start + spec.durationSec * 1000;
  let scheduled = 0;
  for (let now = start; now < end; now = performance.now()) {
    const due = Math.floor(((now - start) / 1000) * spec.ratePerSec);
    for (; scheduled < due; scheduled += 1) {
      if (sends.size >= spec.maxInFlight) {
        skipped += 1;
        continue;
      }
      const sent: Promise<void> = send().finally(() => sends.delete(sent));
      sends.add(sent);
    }
    await sleep(1);
  }
  await Promise.all(sends);
  const benchCpuPercent = bench.stop().cpuPercent;
  const outcomes = await Promise.all(polls);
  const lagsMs = outcomes.filter((o): o is number => typeof o === 'number');
  return {
    targetRate: spec.ratePerSec,
    achievedRate: acknowledged / spec.durationSec,
    acknowledged,
    rejected,
    failedRequests,
    skipped,
    lagsMs,
    timedOut: outcomes.filter((o) => o === 'timeout').length,
    notProcessed: outcomes.filter((o) => typeof o === 'string' && o !== 'timeout').length,
    benchCpuPercent,
  };
}

/**
 * What a closed-loop load sustained end to end: the events it had acknowledged (warm-up included),
 * over the time from its start until the pipeline had caught up with them. A load that outruns the
 * subscribers is acknowledged faster than it is processed; this is the rate it could keep up.
 */
export async function sustainedAfterLoad(
  target: { baseUrl: string; headers: Record<string, string> },
  loadStart: number,
  events: number,
): Promise<{ eventsPerSec: number; catchUpMs: number }> {
  const client = new JsonClient(target.baseUrl, target.headers, 4);
  try {
    const catchUpMs = await waitForPipeline(client, client, ingestBody());
    return { eventsPerSec: events / ((performance.now() - loadStart) / 1000), catchUpMs };
  } finally {
    await client.close();
  }
}
