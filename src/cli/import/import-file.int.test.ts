import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importFile } from './import-file.js';

// A stand-in for Intake's batch endpoint that accepts everything and counts the requests per path.
let server: Server;
let url: string;
const requests = new Map<string, number>();
const dir = mkdtempSync(join(tmpdir(), 'intake-import-file-'));

beforeAll(async () => {
  server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      requests.set(request.url ?? '', (requests.get(request.url ?? '') ?? 0) + 1);
      const events = (JSON.parse(body) as { events: unknown[] }).events;
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify({ results: events.map((_, index) => ({ index, status: 'accepted' })) }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

const quiet = new Writable({ write: (_chunk, _encoding, done) => done() });

describe('importing partner items', () => {
  it('fills a batch per partner at once, so an export that alternates between partners is not sent a request a record', async () => {
    const file = join(dir, 'alternating.ndjson');
    const records = Array.from({ length: 600 }, (_, i) => JSON.stringify({ partner_id: `p${i % 2}`, payload: { i } }));
    writeFileSync(file, records.join('\n'));
    const summary = await importFile({ file, url, token: 't', batchSize: 100, out: quiet });
    expect(summary).toMatchObject({ read: 600, accepted: 600, rejected: 0 });
    expect(Object.fromEntries(requests)).toEqual({ '/api/ingest/p0/batch': 3, '/api/ingest/p1/batch': 3 });
  });
});
