import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, startTestIntake, type TestIntake } from '../../../test/support/embedded-intake.js';

let intake: TestIntake | undefined;
afterEach(async () => {
  await intake?.dispose().catch(() => undefined);
});

const answered = (socket: Socket) =>
  new Promise<string>((resolve) => {
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      if (/\r\n\r\n[\s\S]*\}$/.test(text)) resolve(text);
    });
  });

describe('a client that never finishes its request', () => {
  it('is answered 408 and cut after REQUEST_TIMEOUT_MS, while others are served', async () => {
    intake = await startTestIntake({ REQUEST_TIMEOUT_MS: '300' });
    await intake.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = intake.app.server.address() as { port: number };
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const ended = new Promise((resolve) => socket.once('close', resolve));
    const answer = answered(socket);
    socket.write(
      `POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 500000\r\n\r\n{"batch":[`,
    );
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    // Without the timeout the connection stays open for as long as the client likes: past this test's time.
    expect(await answer).toMatch(/^HTTP\/1\.1 408 /);
    await ended;
  }, 10_000);
});

describe('MAX_CONNECTIONS', () => {
  it('closes a connection beyond the cap at once, and takes new ones again once others have gone', async () => {
    intake = await startTestIntake({ MAX_CONNECTIONS: '2' });
    await intake.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = intake.app.server.address() as { port: number };
    const open = async () => {
      const socket = connect(port, '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      return socket;
    };
    const held = [await open(), await open()];
    const third = await open();
    // Without the cap the server keeps the connection until the request timeout (30 s), past this test's time.
    await new Promise((resolve) => third.once('close', resolve));
    held[0]?.destroy();
    const connections = () => new Promise<number>((resolve) => intake?.app.server.getConnections((_, count) => resolve(count)));
    while ((await connections()) >= 2) await new Promise((resolve) => setTimeout(resolve, 10));
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    held[1]?.destroy();
  }, 10_000);
});

describe('closing the HTTP server', () => {
  it('answers a request in flight, then lets its keep-alive connection go instead of waiting for the client', async () => {
    intake = await startTestIntake();
    await intake.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = intake.app.server.address() as { port: number };
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const ended = new Promise((resolve) => socket.once('close', resolve));
    const body = JSON.stringify({ partner_id: 'p', payload: {} });
    socket.write(
      `POST /ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`,
    );
    const answer = answered(socket);
    await new Promise((resolve) => setTimeout(resolve, 100));

    const closed = intake.app.close();
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
    // The rest of the body, and a request pipelined behind it.
    socket.write(`${body.slice(5)}GET /query/all HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\n\r\n`);
    const text = await answer;
    expect(text).toMatch(/^HTTP\/1\.1 201 /);
    // Said so in the answer: a client that took the connection as kept alive sent its next request into a reset.
    expect(text).toMatch(/\r\nconnection: close\r\n/i);
    // Without the drain the client's open connection held close() for the 72 s keep-alive timeout.
    await closed;
    await ended;
    // The one behind it is not taken: after an answer that closes, a client knows to send it again elsewhere.
    expect(received.match(/HTTP\/1\.1 /g)).toHaveLength(1);
  }, 15_000);

  it('answers a request that comes while it closes with a 503 problem and Retry-After, as every 503 (it was a bare JSON body)', async () => {
    intake = await startTestIntake();
    await intake.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = intake.app.server.address() as { port: number };
    // A request whose headers are still coming when the close begins: its connection is not idle, and
    // the request is known only once they are all there.
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    const ended = new Promise((resolve) => socket.once('close', resolve));
    socket.write(`GET /query/all HTTP/1.1\r\nHost: 127.0.0.1\r\n`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const closed = intake.app.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    socket.write(`Authorization: Bearer ${ADMIN_TOKEN}\r\n\r\n`);
    await closed;
    await ended;
    const late = text.slice(text.lastIndexOf('HTTP/1.1 '));
    expect(late).toMatch(/^HTTP\/1\.1 503 /);
    expect(late).toMatch(/\r\ncontent-type: application\/problem\+json/i);
    expect(late).toMatch(/\r\nretry-after: 1\r\n/i);
    expect(late).toContain('"code":"server.closing"');
    expect(late).toMatch(/\r\nconnection: close\r\n/i);
  }, 15_000);
});
