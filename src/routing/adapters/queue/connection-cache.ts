/**
 * One connection per broker URL, opened on first use and shared by every publish to that URL.
 * A failed open is not kept, and `open` is handed a `forget` callback to call when its connection
 * breaks, so the next publish opens a fresh one instead of failing forever on a dead socket; a
 * publisher `discard`s one that stopped answering, which may never break by itself. A connection no
 * publish has asked for in `idleMs` is closed: URLs come and go with rules (a deleted rule, a rotated
 * password), and each one kept its connection, and a file descriptor, for good.
 */
export interface ConnectionCache<Connection> {
  get(url: string): Promise<Connection>;
  /**
   * Drops a connection that stopped answering and abandons it: one that went dead without closing (a
   * half-open socket, a proxy keeping the client side open after its backend failed over) never says
   * so, and kept every publish to its URL timing out. Publishes in flight on it fail. A connection
   * already replaced is abandoned all the same, and its replacement kept.
   */
  discard(url: string, connection: Connection): void;
  closeAll(): Promise<void>;
}

export type OpenConnection<Connection> = (url: string, forget: () => void) => Promise<Connection>;

/**
 * How long closing waits for one connection: a broker whose socket broke mid-close (the network gone
 * as the process stops) would otherwise hold the shutdown for ever.
 */
const CLOSE_WAIT_MS = 3000;

/** Far longer than any publish takes (each has a timeout of seconds), so an idle close never meets one. */
const IDLE_MS = 5 * 60_000;

export interface ConnectionCacheOptions<Connection> {
  readonly closeWaitMs?: number;
  readonly idleMs?: number;
  /**
   * Closes a discarded connection without waiting for the broker, which does not answer: a polite
   * close would wait for a goodbye that never comes, holding the socket open. `close` if not given.
   */
  readonly abandon?: (connection: Connection) => void;
}

interface Entry<Connection> {
  readonly token: object;
  readonly connection: Promise<Connection>;
  opened?: Connection;
  usedAt: number;
}

export function connectionCache<Connection>(
  open: OpenConnection<Connection>,
  close: (connection: Connection) => Promise<void>,
  { closeWaitMs = CLOSE_WAIT_MS, idleMs = IDLE_MS, abandon }: ConnectionCacheOptions<Connection> = {},
): ConnectionCache<Connection> {
  // The token tells a late `forget` from a broken connection apart from the entry that replaced it;
  // `opened`, once there is one, tells a discarded connection apart the same way.
  const entries = new Map<string, Entry<Connection>>();
  let closed = false;
  let sweeper: NodeJS.Timeout | undefined;

  const closeQuietly = (connection: Promise<Connection>) =>
    connection.then(
      (opened) => close(opened).catch(() => undefined),
      () => undefined,
    );

  const sweep = () => {
    const idleSince = performance.now() - idleMs;
    for (const [url, entry] of entries) {
      if (entry.usedAt > idleSince) continue;
      entries.delete(url);
      void closeQuietly(entry.connection);
    }
    if (entries.size === 0) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  };

  return {
    get(url) {
      if (closed) return Promise.reject(new Error('the publisher is closed'));
      const cached = entries.get(url);
      if (cached !== undefined) {
        cached.usedAt = performance.now();
        return cached.connection;
      }
      const token = {};
      const forget = () => {
        if (entries.get(url)?.token === token) entries.delete(url);
      };
      const connection = open(url, forget);
      const entry: Entry<Connection> = { token, connection, usedAt: performance.now() };
      entries.set(url, entry);
      connection.then((opened) => (entry.opened = opened), forget);
      if (sweeper === undefined) {
        sweeper = setInterval(sweep, Math.max(10, idleMs / 4));
        sweeper.unref();
      }
      return connection;
    },
    discard(url, connection) {
      const entry = entries.get(url);
      if (entry?.opened === connection) entries.delete(url);
      if (abandon === undefined) void close(connection).catch(() => undefined);
      else abandon(connection);
    },
    async closeAll() {
      closed = true;
      clearInterval(sweeper);
      const all = [...entries.values()];
      entries.clear();
      let timer: NodeJS.Timeout | undefined;
      const givenUp = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, closeWaitMs);
        timer.unref();
      });
      const closing = Promise.all(all.map(({ connection }) => closeQuietly(connection)));
      await Promise.race([closing, givenUp]);
      clearTimeout(timer);
    },
  };
}
