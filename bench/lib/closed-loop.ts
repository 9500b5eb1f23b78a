import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext } from '../scenarios/types.js';
import { startLoad, type LoadResult } from './autocannon.js';
import { sampleMachineCpu, sampleProcess, type ThreadSeconds } from './proc-sampler.js';
import { assertAlive, type Target } from './targets.js';

export interface ClosedLoopSpec {
  /** What the progress lines call this run. */
  readonly label: string;
  readonly path: string;
  readonly body: string;
  readonly connections: number;
  readonly warmupSec: number;
  readonly durationSec: number;
  readonly uniqueIds?: boolean;
}

export interface ClosedLoopResult {
  readonly label: string;
  /** The warm-up's figures, or null without one. */
  readonly warmup: LoadResult | null;
  readonly load: LoadResult;
  /** The server's CPU over the measured run (100 = one core). */
  readonly serverCpuPercent: number | null;
  /** CPU of everything but the server and autocannon over the measured run: neighbours, mostly. */
  readonly otherCpuPercent: number | null;
  /** The server's CPU over the measured run by thread: HTTP, storage, the rest. */
  readonly serverThreads: ThreadSeconds | null;
}

/** The columns of CPU microseconds per 2xx answer, or per event of a batch, by thread (see ProcSample.threads). */
export const CPU_PER_ANSWER = 'CPU µs/answer HTTP · storage · rest';
export const CPU_PER_EVENT = 'CPU µs/event HTTP · storage · rest';

/** The bench's own bookkeeping and the OS account for a few percent; more means a neighbour (as in the throughput scenario). */
const OTHER_CPU_WARNING_PERCENT = 15;

/** The shorter runs of the secondary scenarios: half the configured warm-up and duration (2 s + 5 s by default). */
export function shortRun(ctx: BenchContext): { warmupSec: number; durationSec: number } {
  return { warmupSec: Math.ceil(ctx.options.warmupSec / 2), durationSec: Math.ceil(ctx.options.durationSec / 2) };
}

let bodyFiles = 0;

/**
 * A POST load with autocannon as its own process: a discarded warm-up, then the measured run, each
 * connection sending its next request as soon as the previous one is answered.
 */
export async function closedLoop(ctx: BenchContext, target: Target, spec: ClosedLoopSpec): Promise<ClosedLoopResult> {
  const bodyFile = join(ctx.tmpDir, `body-${(bodyFiles += 1)}.json`);
  writeFileSync(bodyFile, spec.body);
  const options = (durationSec: number) => ({
    url: `${target.baseUrl}${spec.path}`,
    connections: spec.connections,
    durationSec,
    method: 'POST' as const,
    bodyFile,
    headers: { ...target.headers, 'content-type': 'application/json' },
    uniqueIds: spec.uniqueIds ?? false,
  });
  let warmup: LoadResult | null = null;
  if (spec.warmupSec > 0) {
    ctx.progress(`${spec.label}: warm-up ${spec.warmupSec} s`);
    warmup = await startLoad(ctx.children, ctx.repoRoot, options(spec.warmupSec)).result;
    assertAlive(target);
  }
  ctx.progress(`${spec.label}: measuring ${spec.durationSec} s, ${spec.connections} connections`);
  const machine = sampleMachineCpu();
  const server = sampleProcess(target.child.pid);
  const run = startLoad(ctx.children, ctx.repoRoot, options(spec.durationSec));
  const loader = sampleProcess(run.child.pid);
  const stopSampling = () => ({ server: server.stop(), loader: loader.stop().cpuPercent, machine: machine.stop() });
  const measured = await run.result.then(
    (load) => {
      const cpu = stopSampling();
      const serverCpuPercent = cpu.server.cpuPercent;
      const otherCpuPercent =
        cpu.machine === null || serverCpuPercent === null || cpu.loader === null
          ? null
          : Math.max(0, cpu.machine - serverCpuPercent - cpu.loader);
      return { load, serverCpuPercent, otherCpuPercent, serverThreads: cpu.server.threads };
    },
    (error: unknown) => {
      stopSampling();
      throw error;
    },
  );
  assertAlive(target);
  return { label: spec.label, warmup, ...measured };
}

/** Notes for anything but clean 2xx answers. */
export function loadNotes(run: ClosedLoopResult): string[] {
  const notes: string[] = [];
  const unexpected = Object.entries(run.load.statusCodes).filter(([code]) => !code.startsWith('2'));
  if (unexpected.length > 0) notes.push(`${run.label}: non-2xx answers: ${unexpected.map(([code, n]) => `${code} x${n}`).join(', ')}.`);
  if (run.load.errors > 0) notes.push(`${run.label}: ${run.load.errors} connection errors (${run.load.timeouts} of them timeouts).`);
  if (run.load.count2xx === 0) notes.push(`${run.label}: FAILED, no 2xx answer at all.`);
  if (run.otherCpuPercent !== null && run.otherCpuPercent > OTHER_CPU_WARNING_PERCENT) {
    notes.push(`WARNING ${run.label}: other processes used ${run.otherCpuPercent.toFixed(0)} % of a core during the measured run.`);
  }
  return notes;
}

/** autocannon's latency histogram has a 1 ms resolution (values truncated): 0 means under a millisecond. */
export function milliseconds(value: number | null): string | null {
  if (value === null) return null;
  return value < 1 ? '<1' : value.toFixed(0);
}
