import type { FastifyBaseLogger } from 'fastify';

/**
 * Counts expected error answers (4xx, and 503 when overloaded or a dependency is away) and logs them
 * as one line at most once per interval, instead of a line with a stack trace per request: under
 * overload the per-request lines were the flood.
 */
export interface ErrorLogSummary {
  /** `cause` is kept (a few distinct ones per interval) for errors whose reason is not in the code. */
  count(status: number, code: string, cause?: string): void;
  /** Logs what is pending and stops the timer. */
  close(): void;
}

const MAX_CAUSES = 3;

export function errorLogSummary(logger: FastifyBaseLogger, intervalMs = 1000): ErrorLogSummary {
  let counts = new Map<string, number>();
  let causes = new Set<string>();
  let timer: NodeJS.Timeout | undefined;

  const flush = () => {
    timer = undefined;
    if (counts.size === 0) return;
    const byCode = Object.fromEntries(counts);
    const total = [...counts.values()].reduce((sum, n) => sum + n, 0);
    const serverSide = [...counts.keys()].some((key) => key.startsWith('5'));
    const line = { counts: byCode, total, interval_ms: intervalMs, ...(causes.size > 0 ? { causes: [...causes] } : {}) };
    if (serverSide) logger.warn(line, 'expected errors answered (summary)');
    else logger.info(line, 'expected errors answered (summary)');
    counts = new Map();
    causes = new Set();
  };

  return {
    count(status, code, cause) {
      const key = `${status} ${code}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      if (cause !== undefined && causes.size < MAX_CAUSES) causes.add(cause);
      if (timer === undefined) {
        timer = setTimeout(flush, intervalMs);
        timer.unref();
      }
    },
    close() {
      if (timer !== undefined) clearTimeout(timer);
      flush();
    },
  };
}
