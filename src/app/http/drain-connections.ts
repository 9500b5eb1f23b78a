import type { Server } from 'node:http';

/** How long a closing server lets requests in flight finish before it cuts their connections. */
export const DRAIN_DEADLINE_MS = 8_000;
const IDLE_SWEEP_MS = 25;

/**
 * Closing, Node's server waits for every connection to end, and closes only those idle when it begins:
 * a keep-alive connection whose request was in flight then stays open after its answer, until the
 * client lets it go or the keep-alive timeout (72 s) runs out, longer than an orchestrator's grace.
 * So idle connections are closed as they become idle, and whatever is left at the deadline is cut.
 */
export function drainConnections(server: Server, deadlineMs = DRAIN_DEADLINE_MS): void {
  const sweep = setInterval(() => server.closeIdleConnections(), IDLE_SWEEP_MS);
  const deadline = setTimeout(() => server.closeAllConnections(), deadlineMs);
  sweep.unref();
  deadline.unref();
  server.once('close', () => {
    clearInterval(sweep);
    clearTimeout(deadline);
  });
}
