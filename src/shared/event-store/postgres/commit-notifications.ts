import type pg from 'pg';

// A channel name goes into LISTEN, where it cannot be a bound parameter.
const CHANNEL_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export function checkChannelName(channel: string): string {
  if (!CHANNEL_NAME.test(channel)) throw new Error(`invalid notification channel "${channel}": use lower-case letters, digits and _`);
  return channel;
}

/**
 * Holds one pooled connection on LISTEN so that commits made by other processes wake this one's
 * subscribers. A lost connection only costs latency: subscribers still poll.
 */
export async function listenForCommits(pool: pg.Pool, channel: string, onHead: (head: number) => void): Promise<() => Promise<void>> {
  const client = await pool.connect();
  let lost = false;
  client.on('notification', (message) => {
    if (message.channel === channel) onHead(Number(message.payload ?? 0));
  });
  client.on('error', () => {
    lost = true;
  });
  await client.query(`LISTEN ${checkChannelName(channel)}`);
  return async () => {
    if (lost) {
      client.release(true);
      return;
    }
    await client.query(`UNLISTEN ${channel}`);
    client.release();
  };
}
