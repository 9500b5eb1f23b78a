import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';

export const natsServerBinary = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';

export interface PrivateNatsServer {
  readonly url: string;
  /** The server's monitoring endpoint (`/connz` lists its client connections). */
  readonly monitorUrl: string;
  /** Stops the server as an outage would; its JetStream data stays in the store directory. */
  stop(): Promise<void>;
  /** Starts it again on the same port and store directory. */
  restart(): Promise<void>;
}

export function natsServerAvailable(): boolean {
  return existsSync(natsServerBinary);
}

/**
 * For tests that take the broker down or need it configured: a JetStream server of their own on a free
 * loopback port, asking for `user` and `pass` when given (its `url` carries none).
 */
export async function startPrivateNatsServer(
  storeDir: string,
  options: { jetstream?: boolean; user?: string; pass?: string } = {},
): Promise<PrivateNatsServer> {
  const port = await freePort();
  const monitorPort = await freePort();
  let child: ChildProcess | undefined;
  const jetstream = options.jetstream === false ? [] : ['-js', '-sd', storeDir];
  const auth = options.user === undefined ? [] : ['--user', options.user, '--pass', options.pass ?? ''];

  const start = async () => {
    child = spawn(natsServerBinary, ['-a', '127.0.0.1', '-p', String(port), '-m', String(monitorPort), ...jetstream, ...auth], {
      stdio: 'ignore',
    });
    await untilListening(port);
  };

  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    monitorUrl: `http://127.0.0.1:${monitorPort}`,
    async stop() {
      const running = child;
      child = undefined;
      if (!running || running.exitCode !== null) return;
      const exited = new Promise((resolve) => running.once('exit', resolve));
      running.kill('SIGTERM');
      await exited;
    },
    restart: start,
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

async function untilListening(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nats-server did not listen on port ${port} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
