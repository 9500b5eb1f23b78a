import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TcpProxy {
  readonly port: number;
  /** Cuts every connection and refuses new ones, as a dead server would. */
  cut(): Promise<void>;
  /** Accepts connections again on the same port. */
  restore(): Promise<void>;
  /** Stops passing bytes either way, and leaves every connection open: a partition, or a frozen host. */
  freeze(): void;
  /**
   * Stops passing bytes on the connections open now, leaving them open, and still accepts and passes
   * new ones: a half-open connection, or a load balancer keeping the client side open after its
   * backend failed over. `thaw` passes them again.
   */
  freezeExisting(): void;
  /** Passes bytes again, those held back first. */
  thaw(): void;
  close(): Promise<void>;
}

/** A loopback TCP proxy a test can cut and restore, to take a real server away and bring it back. */
export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  let frozen = false;

  const listen = () =>
    new Promise<void>((resolve) => {
      server = createServer((client) => {
        const upstream = createConnection({ host: targetHost, port: targetPort });
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.on('close', () => sockets.delete(socket));
          socket.on('error', () => socket.destroy());
        }
        client.pipe(upstream).pipe(client);
        // After pipe(), which sets both flowing.
        if (frozen) for (const socket of [client, upstream]) socket.pause();
      });
      server.listen(port, '127.0.0.1', () => {
        port = (server?.address() as AddressInfo).port;
        resolve();
      });
    });

  const stop = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      if (server) server.close(() => resolve());
      else resolve();
      server = undefined;
    });

  await listen();
  return {
    get port() {
      return port;
    },
    cut: stop,
    restore: listen,
    freeze() {
      frozen = true;
      for (const socket of sockets) socket.pause();
    },
    freezeExisting() {
      for (const socket of sockets) socket.pause();
    },
    thaw() {
      frozen = false;
      for (const socket of sockets) socket.resume();
    },
    close: stop,
  };
}
