import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext } from '../scenarios/types.js';
import type { ExitInfo, ManagedChild } from './children.js';
import { freePort, waitForHealth } from './net.js';

export type Durability = 'power-loss' | 'process-crash';

/** Log lines at pino level warn (40) or above, which a clean run should not produce. */
export interface LogFindings {
  count: number;
  /** The first few such lines, verbatim. */
  readonly samples: string[];
}

/** A server under test, running as a child process. */
export interface Target {
  readonly name: string;
  readonly baseUrl: string;
  readonly child: ManagedChild;
  /** Headers every request to this target needs (auth). */
  readonly headers: Readonly<Record<string, string>>;
  readonly logFindings: LogFindings;
}

const HOST = '127.0.0.1';
const MAX_LOG_SAMPLES = 5;

/**
 * A minimal environment rather than a copy of the bench's: a DURABILITY, BODY_LIMIT or
 * MAX_QUEUED_APPENDS left set in the caller's shell must not silently change what is measured.
 */
function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of ['PATH', 'HOME', 'TMPDIR', 'LANG']) if (process.env[name] !== undefined) env[name] = process.env[name];
  return env;
}

/**
 * BENCH_CPU_PROF_DIR: every Intake process of the run writes a CPU profile of each of its threads
 * there (`node --cpu-prof`), named by process and thread, for the account of where the time goes.
 */
function profilingFlags(): string[] {
  const dir = process.env.BENCH_CPU_PROF_DIR;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

function warnLineCollector(findings: LogFindings): (line: string) => void {
  return (line) => {
    let level = 0;
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed === 'object' && parsed !== null && 'level' in parsed && typeof parsed.level === 'number') level = parsed.level;
    } catch {
      level = 40; // not a pino line: unexpected output, worth showing
    }
    if (level < 40) return;
    findings.count += 1;
    if (findings.samples.length < MAX_LOG_SAMPLES) findings.samples.push(line.slice(0, 500));
  };
}

export interface IntakeOptions {
  /** Shown in progress lines and tables (default `Intake (<durability>)`). */
  readonly name?: string;
  /** Added to the minimal environment: ROLE, a postgres DATABASE_URL, INTAKE_DISABLE... */
  readonly env?: Readonly<Record<string, string>>;
}

/** Intake from dist/, on a fresh SQLite database of its own (unless `env` points it elsewhere). */
export async function startIntake(ctx: BenchContext, durability: Durability, options: IntakeOptions = {}): Promise<Target> {
  const name = options.name ?? `Intake (${durability})`;
  const port = await freePort(HOST);
  const dataDir = mkdtempSync(join(ctx.tmpDir, 'intake-'));
  const token = `bench_${randomBytes(24).toString('hex')}`;
  const logFindings: LogFindings = { count: 0, samples: [] };
  const child = ctx.children.spawn({
    name,
    command: process.execPath,
    args: [...profilingFlags(), join(ctx.repoRoot, 'bin', 'intake.js'), 'serve'],
    cwd: ctx.repoRoot,
    env: {
      ...baseEnv(),
      PORT: String(port),
      HOST,
      DATABASE_URL: `sqlite:${join(dataDir, 'intake.db')}`,
      DATA_DIR: dataDir,
      ADMIN_TOKEN: token,
      LOG_LEVEL: 'warn',
      DURABILITY: durability,
      ...options.env,
    },
    onStdoutLine: warnLineCollector(logFindings),
  });
  const baseUrl = `http://${HOST}:${port}`;
  await waitForHealth(`${baseUrl}/health`, child);
  return { name, baseUrl, child, headers: { authorization: `Bearer ${token}` }, logFindings };
}

export function startRawServer(ctx: BenchContext): Promise<Target> {
  return startBaseline(ctx, 'raw node:http (ceiling)', 'raw-http-server');
}

/** The same route on bare Fastify, with nothing behind it: what the framework leaves of the ceiling. */
export function startFastifyFloor(ctx: BenchContext): Promise<Target> {
  return startBaseline(ctx, 'Fastify, no storage (framework floor)', 'fastify-floor-server');
}

async function startBaseline(ctx: BenchContext, name: string, script: string): Promise<Target> {
  const port = await freePort(HOST);
  const logFindings: LogFindings = { count: 0, samples: [] };
  const child = ctx.children.spawn({
    name,
    command: process.execPath,
    args: [join(ctx.benchDir, `${script}.mjs`)],
    // The repository root, where Fastify resolves from node_modules.
    cwd: ctx.repoRoot,
    env: { ...baseEnv(), PORT: String(port), HOST },
    // Its only expected line is the "listening" one, at no pino level; anything else is worth showing.
    onStdoutLine: (line) => {
      if (line.includes(`${script} listening`)) return;
      logFindings.count += 1;
      if (logFindings.samples.length < MAX_LOG_SAMPLES) logFindings.samples.push(line.slice(0, 500));
    },
  });
  const baseUrl = `http://${HOST}:${port}`;
  await waitForHealth(`${baseUrl}/health`, child);
  // The baseline ignores the header, but one of the same length keeps the request bytes equal to Intake's.
  const token = `bench_${'0'.repeat(48)}`;
  return { name, baseUrl, child, headers: { authorization: `Bearer ${token}` }, logFindings };
}

/** Stops the target gracefully (SIGTERM: Intake finishes in-flight commits) and returns how it exited. */
export function stopTarget(ctx: BenchContext, target: Target): Promise<ExitInfo> {
  return ctx.children.stop(target.child, 10_000);
}

/** A server that died under load shows up as connection errors; say plainly what happened instead. */
export function assertAlive(target: Target): void {
  const { exitCode, signalCode } = target.child.process;
  if (exitCode !== null || signalCode !== null) {
    throw new Error(
      `${target.name} died under load (${signalCode ?? `exit code ${exitCode}`}); stderr:\n${target.child.stderrTail() || '(empty)'}`,
    );
  }
}

/** Notes on how a stopped target behaved: an unclean exit, log lines at warn or above. */
export function exitNotes(target: Target, exit: ExitInfo): string[] {
  const notes: string[] = [];
  if (exit.code !== 0) notes.push(`${target.name}: exited with ${exit.signal ?? `code ${exit.code}`} on SIGTERM (expected code 0).`);
  if (target.logFindings.count > 0) {
    notes.push(
      `${target.name}: ${target.logFindings.count} log line(s) at warn or above, e.g.:`,
      ...target.logFindings.samples.map((line) => `    ${line}`),
    );
  }
  return notes;
}

/** Runs `use` while the target is up, then stops it (also on failure); notes on how it exited come with the result. */
export async function whileRunning<T>(
  ctx: BenchContext,
  target: Target,
  use: (target: Target) => Promise<T>,
): Promise<{ result: T; notes: string[] }> {
  let result: T;
  try {
    result = await use(target);
  } catch (error) {
    await stopTarget(ctx, target);
    throw error;
  }
  ctx.progress(`${target.name}: stopping`);
  return { result, notes: exitNotes(target, await stopTarget(ctx, target)) };
}
