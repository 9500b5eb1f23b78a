import { readdirSync, readFileSync } from 'node:fs';

export interface ProcSample {
  /** Highest VmRSS seen while sampling, in bytes; null where /proc is not available. */
  readonly peakRssBytes: number | null;
  /**
   * CPU time (user + system) used between the first and the last sample, as a percentage of wall time:
   * 100 means one core fully busy. Null where /proc is not available or fewer than two samples were taken.
   */
  readonly cpuPercent: number | null;
  /**
   * CPU seconds of the process's threads over the same window: its main thread (Intake's HTTP thread),
   * its busiest other thread (the storage thread, where there is one) and all the others together
   * (V8's garbage collection helpers, libuv's pool, the WAL checkpointer). Null where /proc is not available.
   */
  readonly threads: ThreadSeconds | null;
}

export interface ThreadSeconds {
  readonly main: number;
  readonly busiest: number;
  readonly rest: number;
}

export interface ProcSampler {
  stop(): ProcSample;
}

/** Linux USER_HZ: the unit of utime/stime in /proc/<pid>/stat. It is 100 on every mainstream architecture. */
const CLOCK_TICKS_PER_SECOND = 100;

function readRssBytes(pid: number): number | null {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match?.[1] === undefined ? null : Number(match[1]) * 1024;
  } catch {
    return null; // not Linux, or the process has exited
  }
}

/** `process`: a pid, or `<pid>/task/<tid>` for one thread. */
function readCpuTicks(process: number | string): number | null {
  try {
    const stat = readFileSync(`/proc/${process}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may contain spaces: split after its closing one.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the whole line, so 11 and 12 counted from field 3.
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return Number.isFinite(utime) && Number.isFinite(stime) ? utime + stime : null;
  } catch {
    return null;
  }
}

/** utime + stime of each thread of a process, by thread id. */
function readThreadTicks(pid: number): Map<number, number> | null {
  try {
    const ticks = new Map<number, number>();
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const value = readCpuTicks(`${pid}/task/${tid}`);
      if (value !== null) ticks.set(Number(tid), value);
    }
    return ticks;
  } catch {
    return null;
  }
}

function threadSeconds(pid: number, before: Map<number, number> | null, after: Map<number, number> | null): ThreadSeconds | null {
  if (before === null || after === null) return null;
  const used = [...after].map(([tid, ticks]) => [tid, (ticks - (before.get(tid) ?? 0)) / CLOCK_TICKS_PER_SECOND] as const);
  const main = used.find(([tid]) => tid === pid)?.[1] ?? 0;
  const others = used.filter(([tid]) => tid !== pid).map(([, seconds]) => seconds);
  const busiest = Math.max(0, ...others);
  return { main, busiest, rest: others.reduce((sum, seconds) => sum + seconds, 0) - busiest };
}

/** Microseconds of CPU per unit of work (a request, an event) in each kind of thread, e.g. "84 · 167 · 60". */
export function microsPer(threads: ThreadSeconds | null, units: number): string | null {
  if (threads === null || units <= 0) return null;
  return [threads.main, threads.busiest, threads.rest].map((seconds) => ((seconds * 1e6) / units).toFixed(0)).join(' · ');
}

/**
 * Polls a process's resident memory and CPU time every `intervalMs` until stopped. Polling VmRSS
 * (rather than reading VmHWM once) confines the peak to the sampled window: VmHWM would also include
 * the warm-up and startup.
 */
export function sampleProcess(pid: number, intervalMs = 200): ProcSampler {
  let peakRss: number | null = null;
  let first: { ticks: number; at: number } | null = null;
  let last: { ticks: number; at: number } | null = null;

  const take = () => {
    const rss = readRssBytes(pid);
    if (rss !== null) peakRss = Math.max(peakRss ?? 0, rss);
    const ticks = readCpuTicks(pid);
    if (ticks !== null) {
      const sample = { ticks, at: performance.now() };
      first ??= sample;
      last = sample;
    }
  };

  take();
  const threadsBefore = readThreadTicks(pid);
  // unref: a forgotten sampler must never keep the bench from exiting.
  const timer = setInterval(take, intervalMs).unref();
  return {
    stop() {
      take();
      const threads = threadSeconds(pid, threadsBefore, readThreadTicks(pid));
      clearInterval(timer);
      let cpuPercent: number | null = null;
      if (first !== null && last !== null && last.at > first.at) {
        cpuPercent = ((last.ticks - first.ticks) / CLOCK_TICKS_PER_SECOND / ((last.at - first.at) / 1000)) * 100;
      }
      return { peakRssBytes: peakRss, cpuPercent, threads };
    },
  };
}

function readMachineBusyTicks(): number | null {
  try {
    // First line of /proc/stat: "cpu  user nice system idle iowait irq softirq steal guest guest_nice".
    const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
    if (fields.length < 8 || fields.some((n) => !Number.isFinite(n))) return null;
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
    return user + nice + system + irq + softirq + steal;
  } catch {
    return null;
  }
}

/**
 * CPU used by the whole machine over a window, in the same unit as ProcSample.cpuPercent (100 = one
 * core). Subtracting the server's and the load generator's share tells whether something else was
 * competing for the CPU during the measurement, which would make its figures unreliable.
 */
export function sampleMachineCpu(): { stop(): number | null } {
  const startTicks = readMachineBusyTicks();
  const startAt = performance.now();
  return {
    stop() {
      const endTicks = readMachineBusyTicks();
      const seconds = (performance.now() - startAt) / 1000;
      if (startTicks === null || endTicks === null || seconds <= 0) return null;
      return ((endTicks - startTicks) / CLOCK_TICKS_PER_SECOND / seconds) * 100;
    },
  };
}

/** CPU of several processes and of the whole machine over one window, by name (the machine's under `machine`). */
export function sampleCpuOf(pids: Readonly<Record<string, number>>): { stop(): Record<string, number | null> } {
  const samplers = Object.entries(pids).map(([name, pid]) => [name, sampleProcess(pid)] as const);
  const machine = sampleMachineCpu();
  return {
    stop() {
      const cpu: Record<string, number | null> = Object.fromEntries(samplers.map(([name, sampler]) => [name, sampler.stop().cpuPercent]));
      cpu.machine = machine.stop();
      return cpu;
    },
  };
}
