import type { ChildRegistry } from '../lib/children.js';
import type { Table } from '../lib/table.js';
import type { Durability } from '../lib/targets.js';

export interface BenchOptions {
  /** Intake is measured once per durability mode listed here. */
  readonly durabilities: readonly Durability[];
  readonly connections: number;
  readonly durationSec: number;
  readonly warmupSec: number;
  /** Also run the scenarios that need PostgreSQL and nats-server (--distributed, BENCH_DISTRIBUTED=1). */
  readonly distributed: boolean;
}

/** What every scenario gets: where things are, the shared child-process registry and the options. */
export interface BenchContext {
  /** The repository root (/work/main), resolved from this file's location, not from the cwd. */
  readonly repoRoot: string;
  readonly benchDir: string;
  /** A fresh directory, removed at the end; a scenario makes its own subdirectories in it. */
  readonly tmpDir: string;
  readonly children: ChildRegistry;
  readonly options: BenchOptions;
  /** Progress messages (stderr), kept apart from the results (stdout). */
  progress(message: string): void;
}

export interface ScenarioReport {
  readonly title: string;
  readonly tables: readonly Table[];
  /** Lines printed under the tables: ratios, checks, anything unexpected. */
  readonly notes: readonly string[];
  /** False when a correctness check failed; the bench then exits non-zero. */
  readonly ok: boolean;
}

/**
 * One section of the bench. Scenarios run one after another, each starting and stopping the
 * servers it needs, so that no idle server shares the machine with a measured one.
 */
export interface Scenario {
  /** What --scenario selects it by. */
  readonly name: string;
  /** Runs only with the `distributed` option: it needs PostgreSQL and nats-server. */
  readonly needsDistributed?: boolean;
  run(ctx: BenchContext): Promise<ScenarioReport>;
}
