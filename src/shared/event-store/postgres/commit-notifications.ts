import type pg from 'pg';

// A channel name goes into LISTEN, where it cannot be a bound parameter.
const CHANNEL_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export function checkChannelName(channel: string): string {
  if (!CHANNEL_NAME.test(channel)) throw new Error(`invalid notification channel "${channel}": use lower-case letters, digits and _`);
  return channel;
}

export interface ListenOptions {
  /** First wait before listening again after the connection was lost; doubles up to `retryMaxMs`. */
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
}

/**
 * Holds one pooled connection on LISTEN so that commits made by other processes wake this one's
 * subscribers. When that connection is lost (PostgreSQL restarted, the backend terminated, the
 * network cut) it listens again on a new one, with backoff, and then wakes everyone once with head 0
 * (unknown): notifications sent meanwhile are gone, so readers look for themselves. Until then only
 * latency suffers: subscribers still poll.
 */
export async function listenForCommits(
  pool: pg.Pool,
  channel: string,
  onHead: (head: number) => void,
  options: ListenOptions = {},
): Promise<() => Promise<void>> {
  const name = checkChannelName(channel);
  const retryBaseMs = options.retryBaseMs ?? 100;
  const retryMaxMs = options.retryMaxMs ?? 5000;
  let client: pg.PoolClient | undefined;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;

  const listen = async (): Promise<void> => {
    const connection = await pool.connect();
    let lost = false;
    const onLost = () => {
      if (lost || stopped) return;
      lost = true;
      if (client === connection) client = undefined;
      connection.release(true);
      scheduleRelisten(0);
    };
    connection.on('notification', (message) => {
      if (message.channel === name) onHead(Number(message.payload ?? 0));
    });
    connection.on('error', onLost);
    connection.on('end', onLost);
    try {
      await connection.query(`LISTEN ${name}`);
    } catch (error) {
      onLost();
      throw error;
    }
    client = connection;
  };

  const scheduleRelisten = (failures: number) => {
    retry = setTimeout(
      () => {
        retry = undefined;
        if (stopped) return;
        listen().then(
          () => onHead(0),
          () => {
            // `onLost` already scheduled the next attempt when the connection broke during LISTEN.
            if (!stopped && retry === undefined && client === undefined) scheduleRelisten(failures + 1);
          },
        );
      },
      Math.min(retryBaseMs * 2 ** failures, retryMaxMs),
    );
  };

  await listen();
  return async () => {
    stopped = true;
    if (retry) clearTimeout(retry);
    const connection = client;
    client = undefined;
    if (!connection) return;
    await connection.query(`UNLISTEN ${name}`).then(
      () => connection.release(),
      () => connection.release(true),
    );
  };
}
