import { join } from 'node:path';
import type { ChildRegistry, ManagedChild } from './children.js';

export interface LoadOptions {
  readonly url: string;
  readonly connections: number;
  readonly durationSec: number;
  readonly method: 'GET' | 'POST';
  /** A file holding the request body (passed with -i, so no shell or argv quoting is involved). */
  readonly bodyFile?: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Replace every `[<id>]` in the body with a fresh UUID per request (through autocannon-unique-ids.mjs). */
  readonly uniqueIds?: boolean;
}

/** The figures the bench uses from autocannon's --json output. Latencies are in milliseconds. */
export interface LoadResult {
  readonly requestsPerSecAvg: number;
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
  readonly latencyMaxMs: number;
  /** Responses received, any status. */
  readonly responses: number;
  readonly count2xx: number;
  readonly non2xx: number;
  /** Connection errors (refused, reset...), timeouts included. */
  readonly errors: number;
  readonly timeouts: number;
  /** Response count by status code, e.g. { "201": 123456 }. */
  readonly statusCodes: Readonly<Record<string, number>>;
  readonly durationSec: number;
}

/** A load run in flight: its process (to sample its CPU) and its parsed result. */
export interface LoadRun {
  readonly child: ManagedChild;
  readonly result: Promise<LoadResult>;
}

/**
 * Runs autocannon as its own process, never in the bench's: the load generator must not share an
 * event loop (or a CPU core, as far as the OS allows) with the bench's own bookkeeping and sampling.
 */
export function startLoad(children: ChildRegistry, repoRoot: string, options: LoadOptions): LoadRun {
  const args = [
    join(repoRoot, 'node_modules', '.bin', 'autocannon'),
    '--json',
    '--no-progress',
    '--connections',
    String(options.connections),
    '--duration',
    String(options.durationSec),
    '--method',
    options.method,
    ...Object.entries(options.headers).flatMap(([name, value]) => ['--headers', `${name}=${value}`]),
    ...(options.bodyFile === undefined ? [] : ['--input', options.bodyFile]),
    options.url,
  ];
  const uniqueIdArgs = () => [
    join(repoRoot, 'bench', 'autocannon-unique-ids.mjs'),
    JSON.stringify({
      url: options.url,
      connections: options.connections,
      duration: options.durationSec,
      method: options.method,
      headers: options.headers,
      bodyFile: options.bodyFile,
    }),
  ];
  const child = children.spawn({
    name: 'autocannon',
    command: process.execPath,
    args: options.uniqueIds ? uniqueIdArgs() : args,
    keepStdout: true,
  });
  const result = child.exited.then((exit) => {
    if (exit.code !== 0) {
      throw new Error(`autocannon exited with ${exit.signal ?? exit.code}; stderr:\n${child.stderrTail() || '(empty)'}`);
    }
    return parseAutocannonJson(child.stdout());
  });
  return { child, result };
}

export function parseAutocannonJson(stdout: string): LoadResult {
  // --json prints one JSON document on the last non-empty line.
  const line = stdout.trim().split('\n').at(-1) ?? '';
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    throw new Error(`autocannon did not print JSON; stdout was:\n${stdout.slice(0, 2000) || '(empty)'}`);
  }
  const root = record(parsed, 'result');
  const latency = record(root.latency, 'latency');
  const requests = record(root.requests, 'requests');
  const statusCodeStats = record(root.statusCodeStats, 'statusCodeStats');
  const statusCodes: Record<string, number> = {};
  for (const [code, stats] of Object.entries(statusCodeStats)) statusCodes[code] = num(record(stats, `statusCodeStats.${code}`), 'count');
  const timeouts = num(root, 'timeouts');
  return {
    requestsPerSecAvg: num(requests, 'average'),
    latencyP50Ms: num(latency, 'p50'),
    latencyP99Ms: num(latency, 'p99'),
    latencyMaxMs: num(latency, 'max'),
    responses: Object.values(statusCodes).reduce((sum, count) => sum + count, 0),
    count2xx: num(root, '2xx'),
    non2xx: num(root, 'non2xx'),
    // autocannon counts a timeout in `errors` too.
    errors: num(root, 'errors'),
    timeouts,
    statusCodes,
    durationSec: num(root, 'duration'),
  };
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`autocannon JSON: ${what} is not an object`);
  }
  return value as Record<string, unknown>;
}

function num(object: Record<string, unknown>, key: string): number {
  const value = object[key];
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new Error(`autocannon JSON: ${key} is not a number`);
  return value;
}
