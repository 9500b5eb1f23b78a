/**
 * The Intake benchmark: `npm run bench` (builds first), then this file.
 *
 * Options, as arguments after `npm run bench --` or as environment variables:
 *   --durability power-loss|process-crash|both   BENCH_DURABILITY   (default power-loss)
 *   --duration SEC                               BENCH_DURATION     (default 10)
 *   --warmup SEC                                 BENCH_WARMUP       (default 3)
 *   --connections N                              BENCH_CONNECTIONS  (default 64)
 *   --scenario NAME                              BENCH_SCENARIO     (default: all)
 *   --distributed                                BENCH_DISTRIBUTED=1 (default off)
 *
 * Scenarios: throughput (POST /ingest against the raw node:http ceiling), lag (end-to-end lag to
 * "processed"), batch, rules, statistics, tracking, and distributed, which runs only with
 * --distributed: it starts nats-server (BENCH_NATS_SERVER, default /usr/sbin/nats-server) and Intake
 * roles on PostgreSQL (BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test).
 *
 * BENCH_CPU_PROF_DIR=DIR writes a CPU profile of each thread of every Intake process into DIR.
 *
 * Results go to stdout, progress to stderr. Every child process is stopped and the temporary
 * directory removed at the end, whether the run succeeded or not.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ChildRegistry } from './lib/children.js';
import { machineInfo } from './lib/machine.js';
import { renderTable } from './lib/table.js';
import type { Durability } from './lib/targets.js';
import { scenarios } from './scenarios/index.js';
import type { BenchContext, BenchOptions, Scenario, ScenarioReport } from './scenarios/types.js';

const benchDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(benchDir, '..');

class UsageError extends Error {}

function readOptions(): { options: BenchOptions; selected: readonly Scenario[] } {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      durability: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      scenario: { type: 'string' },
      distributed: { type: 'boolean' },
    },
  });
  const env = process.env;

  const durability = values.durability ?? env.BENCH_DURABILITY ?? 'power-loss';
  const durabilities: Record<string, readonly Durability[]> = {
    'power-loss': ['power-loss'],
    'process-crash': ['process-crash'],
    both: ['power-loss', 'process-crash'],
  };
  const chosen = durabilities[durability];
  if (chosen === undefined) throw new UsageError(`durability must be power-loss, process-crash or both (got "${durability}")`);

  const positiveInteger = (name: string, raw: string | undefined, fallback: number) => {
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < 1) throw new UsageError(`${name} must be a positive integer (got "${raw}")`);
    return value;
  };

  const distributed = values.distributed ?? env.BENCH_DISTRIBUTED === '1';
  const scenarioName = values.scenario ?? env.BENCH_SCENARIO;
  const selected =
    scenarioName === undefined || scenarioName === ''
      ? scenarios.filter((s) => distributed || !s.needsDistributed)
      : scenarios.filter((s) => s.name === scenarioName);
  if (selected.length === 0) throw new UsageError(`no scenario named "${scenarioName}"; known: ${scenarios.map((s) => s.name).join(', ')}`);
  const needy = selected.find((s) => s.needsDistributed && !distributed);
  if (needy) throw new UsageError(`scenario "${needy.name}" needs PostgreSQL and nats-server: add --distributed or BENCH_DISTRIBUTED=1`);

  return {
    options: {
      durabilities: chosen,
      durationSec: positiveInteger('duration', values.duration ?? env.BENCH_DURATION, 10),
      warmupSec: positiveInteger('warmup', values.warmup ?? env.BENCH_WARMUP, 3),
      connections: positiveInteger('connections', values.connections ?? env.BENCH_CONNECTIONS, 64),
      distributed,
    },
    selected,
  };
}

/**
 * Which code was measured: figures are only comparable between runs of the same revision, and the
 * build is made from the working tree, so uncommitted changes are flagged.
 */
function sourceRevision(): string {
  const git = (...args: string[]) =>
    execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    const head = git('log', '-1', '--format=%h %s').slice(0, 90);
    const dirty = git('status', '--porcelain', '--', 'src', 'migrations', 'package.json') !== '';
    return `git ${head}${dirty ? ' (+ uncommitted changes in src/, migrations/ or package.json)' : ''}`;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

function print(report: ScenarioReport): void {
  const out = [`## ${report.title}`, ''];
  for (const t of report.tables) out.push(renderTable(t), '');
  out.push(...report.notes, '');
  process.stdout.write(`${out.join('\n')}\n`);
}

async function main(): Promise<boolean> {
  const { options, selected } = readOptions();
  if (!existsSync(join(repoRoot, 'dist', 'cli', 'main.js')))
    throw new UsageError('dist/ is missing: run `npm run bench`, which builds first');

  const startedAt = performance.now();
  const progress = (message: string) =>
    process.stderr.write(`[${((performance.now() - startedAt) / 1000).toFixed(1).padStart(5)} s] ${message}\n`);
  const children = new ChildRegistry();
  const tmpDir = mkdtempSync(join(tmpdir(), 'intake-bench-'));
  const cleanUpNow = () => {
    children.killAllNow();
    rmSync(tmpDir, { recursive: true, force: true });
  };
  // Last resorts: whatever way the bench ends, no server or load generator is left running.
  process.once('exit', cleanUpNow);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      progress(`${signal}: stopping`);
      cleanUpNow();
      process.exit(130);
    });
  }

  process.stdout.write(`# Intake benchmark\n\n${machineInfo()}\nsource: ${sourceRevision()}\n`);
  process.stdout.write(
    `options: durability ${options.durabilities.join(' + ')}, ${options.connections} connections, ` +
      `${options.warmupSec} s warm-up + ${options.durationSec} s measured per target (lag, batch, rules, statistics and tracking: half)` +
      `${options.distributed ? ', distributed scenario on' : ''}\n\n`,
  );
  const ctx: BenchContext = { repoRoot, benchDir, tmpDir, children, options, progress };
  let ok = true;
  try {
    for (const scenario of selected) {
      progress(`scenario: ${scenario.name}`);
      const report = await scenario.run(ctx);
      print(report);
      ok &&= report.ok;
    }
  } finally {
    await children.stopAll();
    rmSync(tmpDir, { recursive: true, force: true });
  }
  progress(`done${ok ? '' : ' (with FAILED checks)'}`);
  return ok;
}

main().then(
  (ok) => {
    if (!ok) process.exitCode = 1;
  },
  (error: unknown) => {
    process.stderr.write(
      `bench failed: ${error instanceof UsageError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
  },
);
