import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';

export interface DroppingProxy {
  readonly port: number;
  /** Connections whose answer was thrown away. */
  dropped(): number;
  close(): Promise<void>;
}

/**
 * A loopback proxy that lets the first `drops` requests reach the server but cuts the client's
 * connection as soon as the answer starts: the server has done the work, the client saw a network
 * error and will retry, as after a connection dropped on the way back.
 */
export async function startDroppingProxy(targetPort: number, drops = 1): Promise<DroppingProxy> {
  const sockets = new Set<Socket>();
  let dropped = 0;
  const server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
    const drop = dropped < drops;
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => socket.destroy());
    }
    client.pipe(upstream);
    if (!drop) {
      upstream.pipe(client);
      return;
    }
    upstream.once('data', () => {
      dropped += 1;
      client.destroy();
      upstream.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    dropped: () => dropped,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
