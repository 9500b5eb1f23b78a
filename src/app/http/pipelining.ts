import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';

/** Requests one connection may have waiting behind the one being answered. */
export const MAX_PIPELINED = 16;

/** What a connection has queued behind the request being answered. */
interface Line {
  /** Requests waiting for the answers before theirs. */
  waiting: number;
  /** More were sent than may wait: no request after that one is handled. */
  overflowed: boolean;
  /** What each waiting request does when the client goes: one listener on the socket for them all. */
  readonly onClose: Set<() => void>;
}

/**
 * HTTP/1.1 pipelining, held to one request at a time per connection (decision 0044). Node parses every
 * request a packet holds and hands each to its handler at once, the answers queued behind the first: 1,800
 * `GET /metrics` in one 61 KB packet took the process for 55 s and 2 GB, and a queued answer that
 * streams a file never closes it when the client goes (its descriptor leaked for good). A request
 * waits here until the answers before it are written. A connection that sends more than
 * `MAX_PIPELINED` ahead stops being read: the requests it sent before are answered, those after are
 * never handled, and the connection closes once its last answer is written.
 */
export function limitPipelining(app: FastifyInstance, maxWaiting = MAX_PIPELINED): void {
  const lines = new WeakMap<Socket, Line>();
  const lineOf = (socket: Socket): Line => {
    let line = lines.get(socket);
    if (!line) {
      const created: Line = { waiting: 0, overflowed: false, onClose: new Set() };
      socket.once('close', () => {
        for (const release of created.onClose) release();
      });
      lines.set(socket, (line = created));
    }
    return line;
  };

  // A callback hook: it runs on every request, and an async one costs a promise each time.
  app.addHook('onRequest', (request, reply, done) => {
    const response = reply.raw;
    // The head of its connection's queue (so every request of a client that waits for its answers).
    if (response.socket) return done();
    const socket = request.raw.socket;
    const line = lineOf(socket);
    if (line.overflowed || line.waiting >= maxWaiting) {
      if (!line.overflowed) socket.pause();
      line.overflowed = true;
      // Its turn comes once every answer before it is written: then the connection ends, unhandled.
      response.once('socket', () => socket.destroy());
      return;
    }
    line.waiting += 1;
    const settle = () => {
      response.off('socket', go);
      line.onClose.delete(gone);
      line.waiting -= 1;
    };
    // Node hands the connection to a queued answer once the answers before it are written.
    function go() {
      settle();
      done();
    }
    // The client left: the request is dropped unhandled (`done` never called, nothing holds it).
    function gone() {
      settle();
    }
    response.once('socket', go);
    line.onClose.add(gone);
  });
}
