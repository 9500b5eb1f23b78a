import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';

/** Requests one connection may have waiting behind the one being answered. */
export const MAX_PIPELINED = 16;

/**
 * HTTP/1.1 pipelining, held to one request at a time per connection. Node parses every request a
 * packet holds and hands each to its handler at once, the answers queued behind the first: 1,800
 * `GET /metrics` in one 61 KB packet took the process for 55 s and 2 GB, and a queued answer that
 * streams a file never closes it when the client goes (its descriptor leaked for good). A request
 * waits here until the answers before it are written; a connection that sends more than
 * `MAX_PIPELINED` ahead is closed, and what it had waiting is never handled.
 */
export function limitPipelining(app: FastifyInstance, maxWaiting = MAX_PIPELINED): void {
  const waiting = new WeakMap<Socket, number>();
  // A callback hook: it runs on every request, and an async one costs a promise each time.
  app.addHook('onRequest', (request, reply, done) => {
    const response = reply.raw;
    // The head of its connection's queue (so every request of a client that waits for its answers).
    if (response.socket) return done();
    const socket = request.raw.socket;
    const ahead = (waiting.get(socket) ?? 0) + 1;
    if (ahead > maxWaiting || socket.destroyed) {
      socket.destroy();
      return;
    }
    waiting.set(socket, ahead);
    const settle = () => {
      response.off('socket', go);
      socket.off('close', gone);
      waiting.set(socket, (waiting.get(socket) ?? 1) - 1);
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
    socket.once('close', gone);
  });
}
