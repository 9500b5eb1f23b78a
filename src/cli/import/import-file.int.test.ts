import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createReadStream, lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { importFile, ImportStopped, type ImportOptions } from './import-file.js';
import { ImportRefused } from './send-batch.js';
import { uuidV7Generator } from '../../shared/ids.js';

/**
 * A stand-in for Intake that accepts everything, keeps the bodies and counts the requests per path. A
 * path's first segment picks a misbehaviour: `/small` answers 413 above 2,000 bytes, `/busy` 503 with
 * Retry-After once, `/flaky` 503 seven times, `/down` 503 always, `/silent` never answers, `/stall`
 * answers its first request only.
 */
let server: Server;
let url: string;
const requests = new Map<string, number>();
const bodies: Array<{ batch?: Array<Record<string, unknown>>; events?: Array<Record<string, unknown>> }> = [];
const dir = mkdtempSync(join(tmpdir(), 'intake-import-file-'));

function answer(path: string, body: string, response: ServerResponse): void {
  const seen = requests.get(path) ?? 0;
  const problem = (status: number, detail: string, headers: Record<string, string> = {}) => {
    response.writeHead(status, { 'content-type': 'application/problem+json', ...headers });
    response.end(JSON.stringify({ code: 'stub', detail }));
  };
  if (path.startsWith('/silent/') || (path.startsWith('/stall/') && seen > 1)) return;
  if (path.startsWith('/small/') && body.length > 2000) return problem(413, 'the body is larger than the 2,000 bytes this endpoint takes');
  if (path.startsWith('/busy/') && seen === 1) return problem(503, 'the storage is unavailable', { 'retry-after': '1' });
  if (path.startsWith('/flaky/') && seen <= 7) return problem(503, 'restarting');
  if (path.startsWith('/down/')) return problem(503, 'the storage is unavailable');
  if (path.startsWith('/lost/')) return lostAnswer(body, response);
  const parsed = JSON.parse(body) as (typeof bodies)[number];
  bodies.push(parsed);
  const receipts = (parsed.batch ?? parsed.events ?? []).map((_, index) => ({ index, status: 'accepted' }));
  response.setHeader('content-type', 'application/json');
  response.end(JSON.stringify(parsed.batch ? { receipts } : { results: receipts }));
}

/**
 * `/lost/`: stores what it is sent and answers as Intake does, a duplicate with the first event's id;
 * but it breaks the connection instead of answering a request that carries a message id beginning
 * `lost-` it has not seen before. Message ids beginning `old-` were stored an hour before.
 */
const lostIds = new Map<string, string>();
const newId = uuidV7Generator();
const anHourAgoId = uuidV7Generator(() => Date.now() - 3_600_000);
function lostAnswer(body: string, response: ServerResponse): void {
  const batch = (JSON.parse(body) as { batch: Array<{ messageId: string }> }).batch;
  const losing = batch.some(({ messageId }) => messageId.startsWith('lost-') && !lostIds.has(messageId));
  const receipts = batch.map(({ messageId }, index) => {
    const known = messageId.startsWith('old-') ? anHourAgoId() : lostIds.get(messageId);
    if (known) return { index, status: 'duplicate', event_id: known };
    lostIds.set(messageId, newId());
    return { index, status: 'accepted', event_id: lostIds.get(messageId) };
  });
  if (losing) return void response.socket?.destroy();
  response.setHeader('content-type', 'application/json');
  response.end(JSON.stringify({ receipts }));
}

beforeAll(async () => {
  server = createServer((request: IncomingMessage, response: ServerResponse) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      const path = request.url ?? '';
      requests.set(path, (requests.get(path) ?? 0) + 1);
      answer(path, body, response);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
beforeEach(() => {
  requests.clear();
  bodies.length = 0;
});
afterAll(() => {
  server.closeAllConnections();
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

const quiet = new Writable({ write: (_chunk, _encoding, done) => done() });

/** An output stream that keeps what is said on it. */
function listener() {
  const lines: string[] = [];
  const out = new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { out, lines };
}

const fileOf = (name: string, lines: unknown[]) => {
  const file = join(dir, name);
  writeFileSync(file, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n'));
  return file;
};

const run = (file: string, options: Partial<ImportOptions> = {}) =>
  importFile({ file, url, writeKey: 'wk', token: 't', out: quiet, retryDelayMs: 1, ...options });

const sentMessages = () => bodies.flatMap((b) => b.batch ?? []);

describe('importing partner items', () => {
  it('fills a batch per partner at once, so an export that alternates between partners is not sent a request a record', async () => {
    const file = fileOf(
      'alternating.ndjson',
      Array.from({ length: 600 }, (_, i) => ({ partner_id: `p${i % 2}`, payload: { i } })),
    );
    const summary = await run(file, { batchSize: 100 });
    expect(summary).toMatchObject({ read: 600, accepted: 600, rejected: 0 });
    expect(Object.fromEntries(requests)).toEqual({ '/api/ingest/p0/batch': 3, '/api/ingest/p1/batch': 3 });
  });
});

describe('idempotency keys', () => {
  it('rejects a numeric id a double cannot hold exactly, which would merge with its neighbours, and keeps the others', async () => {
    const file = fileOf('long-ids.ndjson', [
      '{"type":"track","event":"A","userId":"u","messageId":12345678901234567890}',
      '{"type":"track","event":"B","userId":"u","messageId":12345678901234567891}',
      '{"partner_id":"p","payload":{},"message_id":9007199254740993}',
      '{"type":"track","event":"C","userId":"u","messageId":9007199254740991}',
      '{"type":"track","event":"D","userId":"u","messageId":777}',
    ]);
    const summary = await run(file);
    expect(summary).toMatchObject({ read: 5, accepted: 2, rejected: 3 });
    expect(sentMessages().map((m) => m.messageId)).toEqual(['9007199254740991', '777']);
    const rejects = readFileSync(`${file}.rejects.ndjson`, 'utf8').trim().split('\n');
    expect(rejects.map((r) => (JSON.parse(r) as { reason: string }).reason)).toEqual([
      expect.stringMatching(/^messageId is an integer beyond .*write it as a string$/),
      expect.stringMatching(/^messageId is an integer beyond/),
      expect.stringMatching(/^message_id is an integer beyond/),
    ]);
  });

  it('keys an id-less CSV row by its header and row, so the same cells under other columns are another record', async () => {
    const byUser = join(dir, 'by-user.csv');
    const byAnonymous = join(dir, 'by-anonymous.csv');
    writeFileSync(byUser, 'type,userId,event\ntrack,u1,Signup\n');
    writeFileSync(byAnonymous, 'type,anonymousId,event\ntrack,u1,Signup\n');
    await run(byUser);
    await run(byAnonymous);
    const [first, second] = sentMessages().map((m) => m.messageId);
    expect(first).toMatch(/^import-[0-9a-f]{40}$/);
    expect(second).not.toBe(first);
  });

  it('keys an id-less NDJSON line by a hash of its text, as earlier imports did', async () => {
    const line = '{"type":"track","event":"Hashed","userId":"u"}';
    await run(fileOf('hashed.ndjson', [line]));
    const expected = `import-${createHash('sha256').update(line).digest('hex').slice(0, 40)}`;
    expect(sentMessages().map((m) => m.messageId)).toEqual([expected]);
  });
});

describe('an input that breaks', () => {
  it('sends the rows before a quote that never closes, none after it, and stops with what it sent', async () => {
    const rows = Array.from({ length: 250 }, (_, i) => `track,E,q${i},quote-${i},${i === 120 ? '"oops' : `x${i}`}`);
    const file = join(dir, 'unclosed.csv');
    writeFileSync(file, `type,event,userId,messageId,properties.size\n${rows.join('\n')}\n`);
    const failed = run(file, { batchSize: 50 });
    await expect(failed).rejects.toThrow(ImportStopped);
    await expect(failed).rejects.toThrow(/^cannot read .*unclosed\.csv: the quoted field opened on line 122 never closes/);
    expect(await failed.catch((error: ImportStopped) => error.summary)).toEqual({
      read: 120,
      accepted: 120,
      duplicate: 0,
      rejected: 0,
      rejectsPath: undefined,
    });
    expect(sentMessages().map((m) => m.messageId)).toEqual(Array.from({ length: 120 }, (_, i) => `quote-${i}`));
  });
});

describe('stopping by hand', () => {
  it('drops the batch in flight at once, and stops with what was sent and the rejects written', async () => {
    const stop = new AbortController();
    const file = fileOf('interrupted.ndjson', [
      '{"type": broken',
      ...Array.from({ length: 150 }, (_, i) => ({ type: 'track', event: 'E', userId: 'u', messageId: `stop-${i}` })),
    ]);
    const stopped = run(file, { url: `${url}/stall`, signal: stop.signal }).catch((error: unknown) => error);
    while ((requests.get('/stall/v1/import') ?? 0) < 2) await new Promise((resolve) => setTimeout(resolve, 10));
    const started = Date.now();
    stop.abort();
    const error = await stopped;
    expect(Date.now() - started).toBeLessThan(1000);
    expect(error).toBeInstanceOf(ImportStopped);
    expect(error).toMatchObject({
      exitCode: 130,
      message: 'interrupted: run the same command again to go on, which stores nothing twice',
      summary: { read: 151, accepted: 100, duplicate: 0, rejected: 1, rejectsPath: `${file}.rejects.ndjson` },
    });
    expect(readFileSync(`${file}.rejects.ndjson`, 'utf8')).toMatch(/^\{"line":1,"reason":"the line is not valid JSON/);
  });
});

describe('the rejects file', () => {
  it('never deletes a --rejects path: a run without rejects leaves the file named untouched', async () => {
    const named = join(dir, 'notes.txt');
    writeFileSync(named, 'not a rejects file');
    const summary = await run(fileOf('clean.ndjson', [{ type: 'track', event: 'E', userId: 'u' }]), { rejectsPath: named });
    expect(summary).toMatchObject({ rejected: 0, rejectsPath: undefined });
    expect(readFileSync(named, 'utf8')).toBe('not a rejects file');
  });

  it('writes the rejects into a FIFO as it is, never replacing it with a file', async () => {
    const fifo = join(dir, 'rejects.fifo');
    execFileSync('mkfifo', [fifo]);
    let received = '';
    const reader = new Promise<void>((resolve, reject) => {
      createReadStream(fifo)
        .on('data', (chunk) => (received += chunk.toString()))
        .on('end', resolve)
        .on('error', reject);
    });
    const summary = await run(fileOf('one-bad.ndjson', ['{"type": broken', { type: 'track', event: 'E', userId: 'u' }]), {
      rejectsPath: fifo,
    });
    expect(summary).toMatchObject({ accepted: 1, rejected: 1 });
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    await reader;
    expect(received).toMatch(/"line":1,"reason":"the line is not valid JSON/);
  });

  it('removes a rejects file of an earlier run at the default path only when it is a regular file', async () => {
    const file = fileOf('rerun.ndjson', [{ type: 'track', event: 'E', userId: 'u' }]);
    writeFileSync(`${file}.rejects.ndjson`, '{"line":9,"reason":"from an earlier run"}\n');
    await run(file);
    expect(() => lstatSync(`${file}.rejects.ndjson`)).toThrow(/ENOENT/);
  });
});

describe('sending', () => {
  const records = (count: number, bytes: number) =>
    Array.from({ length: count }, (_, i) => ({ type: 'track', event: 'Big', userId: 'u', messageId: `big-${i}`, pad: 'x'.repeat(bytes) }));

  it('sends a batch refused as too large (413) again in halves, and rejects only a record too large alone', async () => {
    const file = fileOf('large.ndjson', [...records(6, 500), ...records(1, 3000).map((r) => ({ ...r, messageId: 'alone' }))]);
    const summary = await run(file, { url: `${url}/small` });
    expect(summary).toMatchObject({ read: 7, accepted: 6, rejected: 1 });
    expect(sentMessages().map((m) => m.messageId)).toEqual(['big-0', 'big-1', 'big-2', 'big-3', 'big-4', 'big-5']);
    const [reject] = readFileSync(`${file}.rejects.ndjson`, 'utf8').trim().split('\n');
    expect(JSON.parse(reject ?? '{}')).toMatchObject({ line: 7, reason: 'the body is larger than the 2,000 bytes this endpoint takes' });
  });

  it("waits as long as the server's Retry-After asks, and says so in one line", async () => {
    const { out, lines } = listener();
    const started = Date.now();
    const summary = await run(fileOf('busy.ndjson', records(1, 10)), { url: `${url}/busy`, out });
    expect(summary).toMatchObject({ accepted: 1 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(lines).toEqual([`${url}/busy/v1/import: HTTP 503 (the storage is unavailable); retrying a batch of 1 in 1 s`]);
  });

  it('counts what an attempt whose answer was lost stored as accepted, and what was there before as duplicate', async () => {
    const message = (messageId: string) => ({ type: 'track', event: 'Lost', userId: 'u', messageId });
    // The second and third batches' answers are lost. The second repeats a record of the first, and one
    // stored long before; the third holds a record twice, which its lost attempt stored once.
    const ids = ['a-1', 'a-2', 'a-3', 'lost-1', 'a-1', 'old-1', 'lost-2', 'lost-2', 'b-1'];
    const summary = await run(fileOf('lost.ndjson', ids.map(message)), { url: `${url}/lost`, batchSize: 3 });
    expect(requests.get('/lost/v1/import')).toBe(5);
    expect(summary).toMatchObject({ read: 9, accepted: 6, duplicate: 3, rejected: 0 });
  });

  it('retries for a time, not a number of attempts, so that a restart longer than a few tries is ridden out', async () => {
    const { out, lines } = listener();
    const summary = await run(fileOf('flaky.ndjson', records(1, 10)), { url: `${url}/flaky`, out });
    expect(summary).toMatchObject({ accepted: 1 });
    expect(requests.get('/flaky/v1/import')).toBe(8);
    expect(lines).toHaveLength(7);
  });

  it('gives up on a server that keeps failing once the budget is spent', async () => {
    const { out, lines } = listener();
    const failed = run(fileOf('down.ndjson', records(1, 10)), { url: `${url}/down`, out, retryDelayMs: 20, retryBudgetMs: 150 });
    await expect(failed).rejects.toThrow(ImportRefused);
    await expect(failed).rejects.toThrow(
      /^no Intake took a batch at .*\/down\/v1\/import in [\d.]+ s of retries: HTTP 503 \(the storage is unavailable\)$/,
    );
    expect(lines.length).toBeGreaterThanOrEqual(2);
  });

  it('counts a request left unanswered as a failure, rather than wait for it forever', async () => {
    const { out, lines } = listener();
    const failed = run(fileOf('silent.ndjson', records(1, 10)), {
      url: `${url}/silent`,
      out,
      requestTimeoutMs: 100,
      retryDelayMs: 10,
      retryBudgetMs: 250,
    });
    await expect(failed).rejects.toThrow(/no answer within 0\.1 s$/);
    expect(lines[0]).toMatch(/silent\/v1\/import: no answer within 0\.1 s; retrying a batch of 1 in/);
  });

  it('stops at once on a request that cannot be sent at all, which no retry mends', async () => {
    const started = Date.now();
    const file = fileOf('bad-token.ndjson', [{ partner_id: 'p', payload: {} }]);
    await expect(run(file, { token: 'pasted\nwith a line break', retryDelayMs: 1000 })).rejects.toThrow(
      /^cannot send to .*\/api\/ingest\/p\/batch: Headers.append: a value is an invalid header value/,
    );
    await expect(run(file, { token: 'pasted\nwith a line break' })).rejects.not.toThrow(/pasted/);
    expect(Date.now() - started).toBeLessThan(1000);
  });
});
