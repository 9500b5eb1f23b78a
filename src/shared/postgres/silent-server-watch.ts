import pg from 'pg';

export interface SilentServerWatchOptions {
  readonly url: string;
  /** How long a query may wait before the watch asks whether the server can still be reached. */
  readonly stallMs: number;
  /** How long that question, a fresh connection and `SELECT 1`, may take. */
  readonly probeTimeoutMs: number;
}

interface Connection {
  readonly stream: { destroy(): void };
}

/**
 * A server cut off without a word (a network partition, a frozen host) leaves every query in flight
 * waiting until TCP gives up, a quarter of an hour later, and the request behind it waits as long. A
 * query that has waited `stallMs` is cut when a fresh connection cannot reach the server either: then
 * the query is lost, not slow. Its caller gets "Connection terminated" (a storage fault, so a request
 * answers 503), and the pool opens new connections once the server answers again. A slow query on a
 * server that answers is left alone. Returns a function that stops the watch.
 */
export function watchForSilentServer(pool: pg.Pool, options: SilentServerWatchOptions): () => void {
  // When each connection's oldest query in flight was sent; absent while it has none.
  const waitingSince = new Map<pg.PoolClient, number>();

  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    let inFlight = 0;
    const settled = () => {
      inFlight -= 1;
      if (inFlight === 0) waitingSince.delete(client);
      else waitingSince.set(client, performance.now());
    };
    // Only the promise form is watched: it is the one Kysely and the stores use.
    (client as { query: unknown }).query = (...args: unknown[]) => {
      const result = query(...args);
      if (!(result instanceof Promise)) return result;
      inFlight += 1;
      if (inFlight === 1) waitingSince.set(client, performance.now());
      result.then(settled, settled);
      return result;
    };
  });
  pool.on('remove', (client) => waitingSince.delete(client));

  let lastProbe = Number.NEGATIVE_INFINITY;
  let probing = false;
  const check = async () => {
    const now = performance.now();
    const stalled = [...waitingSince].filter(([, since]) => now - since >= options.stallMs).map(([client]) => client);
    if (stalled.length === 0 || probing || now - lastProbe < options.stallMs) return;
    probing = true;
    lastProbe = now;
    try {
      if (await reachable(options)) return;
      for (const client of stalled) {
        if (waitingSince.has(client)) (client as unknown as { connection: Connection }).connection.stream.destroy();
      }
    } finally {
      probing = false;
    }
  };
  const timer = setInterval(() => void check(), Math.max(10, Math.floor(options.stallMs / 4)));
  timer.unref();
  return () => clearInterval(timer);
}

async function reachable(options: SilentServerWatchOptions): Promise<boolean> {
  const probe = new pg.Client({
    connectionString: options.url,
    connectionTimeoutMillis: options.probeTimeoutMs,
    query_timeout: options.probeTimeoutMs,
  });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    await probe.query('SELECT 1');
    void probe.end().catch(() => undefined);
    return true;
  } catch {
    // Ending politely would wait on the very socket that does not answer.
    (probe as unknown as { connection: Connection }).connection.stream.destroy();
    return false;
  }
}
