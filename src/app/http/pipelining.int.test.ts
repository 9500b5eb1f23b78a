import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, auth, startTestIntake, type TestIntake } from '../../../test/support/embedded-intake.js';
import { MAX_PIPELINED } from './pipelining.js';

let intake: TestIntake;
let port: number;

beforeAll(async () => {
  intake = await startTestIntake();
  await intake.app.listen({ port: 0, host: '127.0.0.1' });
  port = (intake.app.server.address() as { port: number }).port;
});
afterAll(() => intake.dispose());

const requests = (path: string, count: number) => `GET ${path} HTTP/1.1\r\nHost: a\r\n\r\n`.repeat(count);

/** Everything the server sends on one connection until it closes it or `quietMs` pass in silence. */
function exchange(text: string, quietMs = 1500): Promise<{ received: string; closedByServer: boolean }> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, '127.0.0.1');
    let received = '';
    let timer: NodeJS.Timeout | undefined;
    const finish = (closedByServer: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ received, closedByServer });
    };
    const quiet = () => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(false), quietMs);
    };
    socket.on('connect', () => {
      socket.write(text);
      quiet();
    });
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      quiet();
    });
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', reject);
  });
}

const answers = (received: string) => received.match(/HTTP\/1\.1 \d{3}/g) ?? [];

describe('pipelined requests', () => {
  it('are answered in order, one after the other', async () => {
    const { received, closedByServer } = await exchange(requests('/health', 3) + requests('/nowhere', 1) + requests('/health', 1));
    expect(answers(received)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 404', 'HTTP/1.1 200']);
    expect(closedByServer).toBe(false);
  });

  it(`answer the requests up to ${MAX_PIPELINED} ahead of the first, then close the connection, leaving the rest unhandled`, async () => {
    const { received, closedByServer } = await exchange(requests('/openapi.json', 200));
    expect(closedByServer).toBe(true);
    expect(answers(received)).toHaveLength(MAX_PIPELINED + 1);

    // Every write that ran is answered: the client can tell them from those never handled.
    const ingest = (n: number) => {
      const body = JSON.stringify({ partner_id: 'piped', event_type: `e${n}`, payload: {} });
      return `POST /ingest HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    };
    const writes = await exchange(Array.from({ length: MAX_PIPELINED + 5 }, (_, n) => ingest(n)).join(''));
    expect(writes.closedByServer).toBe(true);
    expect(answers(writes.received)).toEqual(Array(MAX_PIPELINED + 1).fill('HTTP/1.1 201'));
    const stored = await intake.app.inject({ method: 'GET', url: '/ingest/partner/piped?limit=100', headers: auth });
    expect(stored.json().items).toHaveLength(MAX_PIPELINED + 1);
  });

  it('wait with one listener per connection, whatever their number', async () => {
    const warnings: string[] = [];
    const warned = (warning: Error) => warnings.push(warning.name);
    process.on('warning', warned);
    try {
      expect(answers((await exchange(requests('/health', MAX_PIPELINED + 1), 500)).received)).toHaveLength(MAX_PIPELINED + 1);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(warnings).toEqual([]);
    } finally {
      process.off('warning', warned);
    }
  });

  it('leave no file open when the client goes before its queued answers are written', async () => {
    const open = () => readdirSync('/proc/self/fd').length;
    // Swagger UI's assets are answered as streams of their files.
    const asset = '/docs/static/swagger-ui-bundle.js';
    await exchange(requests(asset, 1), 300);
    const before = open();
    for (let i = 0; i < 10; i++) {
      await new Promise<void>((resolve) => {
        const socket = connect(port, '127.0.0.1', () => {
          socket.end(requests(asset, 5));
          socket.destroy();
          resolve();
        });
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(open()).toBeLessThan(before + 5);
  });
});
