import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface ManagedChild {
  readonly name: string;
  readonly process: ChildProcess;
  readonly pid: number;
  /** Settles when the process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;
  /** The whole stdout, for children whose output is the result (autocannon --json). */
  stdout(): string;
  /** The last few KB of stderr, for error messages. */
  stderrTail(): string;
}

export interface SpawnRequest {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Called for each complete stdout line (Intake's pino log lines, for instance). */
  readonly onStdoutLine?: (line: string) => void;
  /** Keep stdout in memory; off for long-running servers, whose output only goes to onStdoutLine. */
  readonly keepStdout?: boolean;
}

const STDERR_TAIL_BYTES = 8 * 1024;

/**
 * Every process the bench starts goes through this registry, so that one `stopAll()` in a `finally`
 * (and a synchronous SIGKILL on process exit, as a last resort) leaves nothing running behind.
 */
export class ChildRegistry {
  private readonly live = new Set<ManagedChild>();

  spawn(request: SpawnRequest): ManagedChild {
    const options: SpawnOptions = { cwd: request.cwd, env: request.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] };
    const child = spawn(request.command, [...request.args], options);
    if (child.pid === undefined) throw new Error(`could not start ${request.name} (${request.command})`);

    let stdout = '';
    let pendingLine = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      if (request.keepStdout) stdout += chunk;
      if (!request.onStdoutLine) return;
      const lines = (pendingLine + chunk).split('\n');
      pendingLine = lines.pop() ?? '';
      for (const line of lines) if (line.trim() !== '') request.onStdoutLine(line);
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_TAIL_BYTES);
    });

    const exited = new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      // A spawn failure emits 'error' without 'exit'.
      child.once('error', () => resolve({ code: null, signal: null }));
    });

    const managed: ManagedChild = {
      name: request.name,
      process: child,
      pid: child.pid,
      exited,
      stdout: () => stdout,
      stderrTail: () => stderr,
    };
    this.live.add(managed);
    void exited.then(() => this.live.delete(managed));
    return managed;
  }

  /** SIGTERM, then SIGKILL if the process has not exited within `graceMs`. */
  async stop(child: ManagedChild, graceMs = 5000): Promise<ExitInfo> {
    if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGTERM');
    const timer = setTimeout(() => child.process.kill('SIGKILL'), graceMs);
    try {
      return await child.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  async stopAll(graceMs = 5000): Promise<void> {
    await Promise.all([...this.live].map((child) => this.stop(child, graceMs)));
  }

  /** For `process.on('exit')`, where nothing asynchronous can run any more. */
  killAllNow(): void {
    for (const child of this.live) child.process.kill('SIGKILL');
  }
}
