/**
 * One connection per broker URL, opened on first use and shared by every publish to that URL.
 * A failed open is not kept, and `open` is handed a `forget` callback to call when its connection
 * breaks, so the next publish opens a fresh one instead of failing forever on a dead socket.
 */
export interface ConnectionCache<Connection> {
  get(url: string): Promise<Connection>;
  closeAll(): Promise<void>;
}

export type OpenConnection<Connection> = (url: string, forget: () => void) => Promise<Connection>;

/**
 * How long closing waits for one connection: a broker whose socket broke mid-close (the network gone
 * as the process stops) would otherwise hold the shutdown for ever.
 */
const CLOSE_WAIT_MS = 3000;

export function connectionCache<Connection>(
  open: OpenConnection<Connection>,
  close: (connection: Connection) => Promise<void>,
  closeWaitMs = CLOSE_WAIT_MS,
): ConnectionCache<Connection> {
  // The token tells a late `forget` from a broken connection apart from the entry that replaced it.
  const entries = new Map<string, { readonly token: object; readonly connection: Promise<Connection> }>();
  let closed = false;

  return {
    get(url) {
      if (closed) return Promise.reject(new Error('the publisher is closed'));
      const cached = entries.get(url);
      if (cached !== undefined) return cached.connection;
      const token = {};
      const forget = () => {
        if (entries.get(url)?.token === token) entries.delete(url);
      };
      const connection = open(url, forget);
      entries.set(url, { token, connection });
      connection.catch(forget);
      return connection;
    },
    async closeAll() {
      closed = true;
      const all = [...entries.values()];
      entries.clear();
      let timer: NodeJS.Timeout | undefined;
      const givenUp = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, closeWaitMs);
        timer.unref();
      });
      const closing = Promise.all(
        all.map(({ connection }) =>
          connection.then(
            (opened) => close(opened).catch(() => undefined),
            () => undefined,
          ),
        ),
      );
      await Promise.race([closing, givenUp]);
      clearTimeout(timer);
    },
  };
}
