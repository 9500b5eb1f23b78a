import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, startTestIntake, type TestIntake } from '../support/embedded-intake.js';
import { createSource, eventsOf } from '../support/analytics-source.js';
import { INTAKE_CLI } from '../support/intake-cli.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'intake-import-'));
let intake: TestIntake;
let baseUrl: string;
let writeKey: string;

/** Runs `intake import` as a user would, without a terminal: plain progress lines, a summary on stdout. */
function cli(
  args: string[],
  input?: Buffer,
  env: Record<string, string> = {},
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...INTAKE_CLI, 'import', ...args], {
      cwd: root,
      env: { ...process.env, INTAKE_URL: baseUrl, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
    child.stdin.end(input);
  });
}

beforeAll(async () => {
  intake = await startTestIntake();
  baseUrl = await intake.app.listen({ host: '127.0.0.1', port: 0 });
  writeKey = (await createSource(intake, 'shop')).writeKey;
  await createSource(intake, 'history');
  await createSource(intake, 'csv');
});
afterAll(async () => {
  await intake.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const lines = [
  JSON.stringify({
    type: 'track',
    event: 'Order Completed',
    userId: 'u1',
    properties: { revenue: 10 },
    timestamp: '2025-01-01T10:00:00Z',
    messageId: 'hist-1',
  }),
  JSON.stringify({ type: 'identify', userId: 'u1', traits: { plan: 'pro' } }),
  '{"type": "track", broken json',
  JSON.stringify({ type: 'track', event: 'Viewed' }),
  JSON.stringify({ type: 'page', anonymousId: 'a1', name: 'Home' }),
];

// Each test starts the CLI a few times through tsx, which takes seconds on a busy machine.
describe('intake import', { timeout: 180_000 }, () => {
  it('sends an NDJSON file in batches, writes the rejects with their reasons, and stores nothing twice on a second run', async () => {
    const file = join(dir, 'history.ndjson');
    writeFileSync(file, lines.join('\n') + '\n');
    const first = await cli([file, '--write-key', writeKey, '--batch-size', '2']);
    expect(first.status).toBe(0);
    expect(first.stdout).toContain('imported 5 records: 3 accepted, 0 duplicate, 2 rejected');
    const rejects = readFileSync(`${file}.rejects.ndjson`, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rejects.map((r) => r.line)).toEqual([3, 4]);
    expect(rejects[0].reason).toMatch(/not valid JSON/);
    expect(rejects[1].reason).toMatch(/userId or anonymousId is required/);
    const stored = await eventsOf(intake, 'shop');
    expect(stored.map((e) => e.event_type)).toEqual(['Order Completed', 'identify', 'page']);
    // Historical messages keep their own time.
    expect(stored[0]?.payload.timestamp).toBe('2025-01-01T10:00:00.000Z');

    // For scripts, the same summary as one JSON object.
    const again = await cli([file, '--write-key', writeKey, '--json']);
    expect(again.status).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual({
      read: 5,
      accepted: 0,
      duplicate: 3,
      rejected: 2,
      not_confirmed: 0,
      rejects_path: `${file}.rejects.ndjson`,
    });
    expect(await eventsOf(intake, 'shop')).toHaveLength(3);
  });

  it('reads a gzipped file from stdin with -', async () => {
    const gz = gzipSync(
      lines
        .slice(0, 2)
        .map((l) => l.replace('u1', 'u2').replace('hist-1', 'stdin-1'))
        .join('\n'),
    );
    const result = await cli(['-', '--write-key', writeKey], gz);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('imported 2 records: 2 accepted, 0 duplicate, 0 rejected');
    const file = join(dir, 'two.ndjson.gz');
    writeFileSync(file, gz);
    const fromFile = await cli([file, '--write-key', writeKey]);
    expect(fromFile.stdout).toContain('imported 2 records: 0 accepted, 2 duplicate, 0 rejected');
    // A gzipped file's rejects are named after it whole: those of two.ndjson beside it are another run's.
    const withReject = join(dir, 'three.ndjson.gz');
    writeFileSync(withReject, gzipSync(`${lines[0]}\n{"type":"track"}\n`));
    const rejecting = await cli([withReject, '--write-key', writeKey, '--json']);
    expect(JSON.parse(rejecting.stdout)).toMatchObject({ rejected: 1, rejects_path: `${withReject}.rejects.ndjson` });
    const one = join(dir, 'one.ndjson');
    writeFileSync(one, `${lines[0]}\n`);
    expect((await cli([one, '--write-key', writeKey])).stdout).toContain('imported 1 record: 0 accepted, 1 duplicate, 0 rejected');
    const broken = join(dir, 'broken.ndjson.gz');
    writeFileSync(broken, gz.subarray(0, gz.length - 12));
    const failed = await cli([broken, '--write-key', writeKey]);
    expect(failed.status).toBe(1);
    expect(failed.stderr).toMatch(/unexpected end of file/);
    // What was read before the gzip broke is sent before the import stops.
    const many = Array.from({ length: 300 }, (_, i) =>
      JSON.stringify({ type: 'track', event: 'Cut', userId: 'u-cut', messageId: `cut-${i}` }),
    );
    const cut = gzipSync(many.join('\n'));
    const truncated = join(dir, 'cut.ndjson.gz');
    writeFileSync(truncated, cut.subarray(0, Math.floor(cut.length * 0.8)));
    const stopped = await cli([truncated, '--write-key', writeKey, '--batch-size', '100']);
    expect(stopped.status).toBe(1);
    const line = Number(/after line (\d+)/.exec(stopped.stderr)?.[1]);
    expect(line).toBeGreaterThan(100);
    expect((await eventsOf(intake, 'shop')).filter((e) => e.payload.userId === 'u-cut')).toHaveLength(line);

    // `(cat export.ndjson.gz; echo garbage)`: every line is sent, and the garbage is a warning, as gzip says.
    const trailing = join(dir, 'trailing.ndjson.gz');
    const kept = many.map((l) => l.replace('u-cut', 'u-trailing').replace('cut-', 'trailing-'));
    writeFileSync(trailing, Buffer.concat([gzipSync(kept.join('\n')), Buffer.from('garbage\n')]));
    const warned = await cli([trailing, '--write-key', writeKey]);
    expect([warned.status, warned.stdout]).toEqual([0, expect.stringContaining('imported 300 records: 300 accepted')]);
    expect(warned.stderr).toContain(`${trailing}: the bytes after its gzip data are not gzip: they are ignored, as gzip does`);
  });

  it('rejects the records a key may not write and goes on, keeps numeric messageIds, and stops when the rejects cannot be written', async () => {
    const file = join(dir, 'mixed.ndjson');
    writeFileSync(
      file,
      [
        { type: 'track', event: 'M1', userId: 'mx', messageId: 'mx-1' },
        { partner_id: 'history', event_type: 'pe', payload: { x: 2 }, message_id: 'mx-p2' },
        { type: 'track', event: 'M2', userId: 'mx', messageId: 777 },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
    // The shop's write key as the token: the partner item of another application is its own reject.
    const result = await cli([file, '--write-key', writeKey, '--token', writeKey]);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('imported 3 records: 2 accepted, 0 duplicate, 1 rejected');
    expect(readFileSync(`${file}.rejects.ndjson`, 'utf8')).toMatch(/cannot write as history/);
    const stored = (await eventsOf(intake, 'shop')).filter((e) => e.payload.userId === 'mx');
    expect(stored.map((e) => e.payload.messageId)).toEqual(['mx-1', '777']);

    const unwritable = await cli([file, '--write-key', writeKey, '--token', writeKey, '--rejects', join(dir, 'no-such-dir', 'r.ndjson')]);
    expect(unwritable.status).toBe(1);
    expect(unwritable.stderr.trim()).toMatch(/^intake: cannot write the rejects to .*no-such-dir.*: ENOENT/);
    expect(unwritable.stderr).not.toMatch(/\n\s+at /);
  });

  it('reads CSV with dotted columns, and partner items with the admin token', async () => {
    const csv = join(dir, 'orders.csv');
    writeFileSync(
      csv,
      'type,event,userId,properties.revenue,properties.note\ntrack,Order Completed,u9,12.5,"first, with ""quotes"""\ntrack,Order Completed,u9,7,\n',
    );
    const result = await cli([csv, '--write-key', writeKey]);
    expect(result.stdout).toContain('imported 2 records: 2 accepted, 0 duplicate, 0 rejected');
    const orders = (await eventsOf(intake, 'shop')).filter((e) => e.payload.userId === 'u9');
    expect(orders.map((e) => e.payload.properties)).toEqual([{ revenue: 12.5, note: 'first, with "quotes"' }, { revenue: 7 }]);

    const items = join(dir, 'items.ndjson');
    writeFileSync(
      items,
      [
        { partner_id: 'history', event_type: 'order', payload: { total: 1 } },
        { partner_id: 'history', payload: 'not an object' },
        // Misspelled: refused as the batch endpoint refuses it, never stored as the default type.
        { partner_id: 'history', evnet_type: 'order', payload: { total: 2 } },
        // No URL path holds it: that line alone is refused, and the import goes on.
        { partner_id: '..', event_type: 'order', payload: { total: 3 } },
        { partner_id: 'history', event_type: 'refund', payload: { total: 4 } },
      ]
        .map((i) => JSON.stringify(i))
        .join('\n'),
    );
    const partner = await cli([items, '--token', ADMIN_TOKEN]);
    expect(partner.status).toBe(0);
    expect(partner.stdout).toContain('imported 5 records: 2 accepted, 0 duplicate, 3 rejected');
    const reasons = readFileSync(`${items}.rejects.ndjson`, 'utf8')
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { reason: string }).reason);
    expect(reasons.sort()).toEqual([
      'app_id must not be "." or ".."',
      'evnet_type is not a field of this request (misspelled?)',
      'payload must be a JSON object',
    ]);
    expect((await cli([items, '--token', ADMIN_TOKEN])).stdout).toContain('0 accepted, 2 duplicate, 3 rejected');
    expect((await eventsOf(intake, 'history')).map((e) => e.event_type)).toEqual(['order', 'refund']);
  });

  it('refuses to start without a write key or a token, rather than reject every record', async () => {
    const file = join(dir, 'keyless.ndjson');
    writeFileSync(file, lines[0] ?? '');
    const result = await cli([file], undefined, { ADMIN_TOKEN: '', INTAKE_TOKEN: '', INTAKE_WRITE_KEY: '' });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/^intake import: give --write-key .* or --token/);
  });

  it('stops with a clear message when the key is refused', async () => {
    const file = join(dir, 'refused.ndjson');
    writeFileSync(file, lines[0] ?? '');
    const result = await cli([file, '--write-key', 'wk_wrong']);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/refused the credentials/);
  });
  it('says in one line what is wrong with an input it cannot read, without a stack trace', async () => {
    const broken = await cli(['-', '--write-key', writeKey], Buffer.concat([gzipSync(`${lines[0]}\n`).subarray(0, 20)]));
    expect(broken.status).toBe(1);
    expect(broken.stderr.trim()).toMatch(/^intake: cannot read stdin after line 0: the gzip data is broken/);
    expect(broken.stderr).not.toMatch(/\n\s+at /);
    const missing = await cli([join(dir, 'nowhere.ndjson'), '--write-key', writeKey]);
    expect(missing.status).toBe(1);
    expect(missing.stderr.trim()).toBe(`intake: cannot read ${join(dir, 'nowhere.ndjson')}: no such file`);
  });

  it('stops at a CSV quote that never closes, says where and what it sent, and stores nothing twice once the file is fixed', async () => {
    const file = join(dir, 'unclosed.csv');
    const rows = (size: (i: number) => string) =>
      `type,event,userId,messageId,properties.size\n${Array.from({ length: 300 }, (_, i) => `track,Q,u-quote,quote-${i},${size(i)}`).join('\n')}\n`;
    writeFileSync(
      file,
      rows((i) => (i === 150 ? '"oops' : `x${i}`)),
    );
    const stopped = await cli([file, '--write-key', writeKey]);
    expect(stopped.status).toBe(1);
    expect(stopped.stdout).toBe('stopped after 150 records: 150 accepted, 0 duplicate, 0 rejected\n');
    expect(stopped.stderr.trim()).toBe(
      `intake: cannot read ${file}: the quoted field opened on line 152 never closes (no closing " before the end of the file): ` +
        'close it and run the same command again, which stores nothing twice',
    );
    writeFileSync(
      file,
      rows((i) => (i === 150 ? '"oops"' : `x${i}`)),
    );
    const fixed = await cli([file, '--write-key', writeKey]);
    expect([fixed.status, fixed.stdout]).toEqual([0, 'imported 300 records: 150 accepted, 150 duplicate, 0 rejected\n']);
    expect((await eventsOf(intake, 'shop')).filter((e) => e.payload.userId === 'u-quote')).toHaveLength(300);
  });

  it.each([
    ['text', [], 'stopped after 150 records: 100 accepted, 0 duplicate, 0 rejected, 50 not confirmed\n'],
    [
      'JSON',
      ['--json'],
      `${JSON.stringify({ read: 150, accepted: 100, duplicate: 0, rejected: 0, not_confirmed: 50, rejects_path: null })}\n`,
    ],
  ])('says what it sent when stopped with Ctrl-C, and exits 130 (%s)', async (_output, flags, summary) => {
    // A stand-in for Intake that takes the first batch and never answers the second: Ctrl-C comes mid-import.
    let seen = 0;
    let secondBatch: () => void = () => {};
    const stalled = new Promise<void>((resolve) => (secondBatch = resolve));
    const stub = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        seen += 1;
        if (seen > 1) return secondBatch();
        response.setHeader('content-type', 'application/json');
        response.end(JSON.stringify({ receipts: Array.from({ length: 100 }, (_, index) => ({ index, status: 'accepted' })) }));
      });
    });
    await new Promise<void>((resolve) => stub.listen(0, '127.0.0.1', resolve));
    try {
      const file = join(dir, 'interrupted.ndjson');
      writeFileSync(
        file,
        Array.from({ length: 150 }, (_, i) => JSON.stringify({ type: 'track', event: 'E', userId: 'u', messageId: `int-${i}` })).join('\n'),
      );
      const child = spawn(process.execPath, [...INTAKE_CLI, 'import', file, '--write-key', 'wk', ...flags], {
        cwd: root,
        env: { ...process.env, INTAKE_URL: `http://127.0.0.1:${(stub.address() as AddressInfo).port}` },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const closed = new Promise<[number | null, string | null]>((resolve) => child.on('close', (code, signal) => resolve([code, signal])));
      await stalled;
      child.kill('SIGINT');
      expect(await closed).toEqual([130, null]);
      expect(stdout).toBe(summary);
      expect(stderr.trim()).toBe('intake: interrupted: run the same command again to go on, which stores nothing twice');
    } finally {
      stub.closeAllConnections();
      stub.close();
    }
  });

  it('rejects a line longer than 8 MB alone, without holding it whole, and imports the lines after it', async () => {
    const giant = Buffer.alloc(40 * 1024 * 1024, 'a');
    const after = JSON.stringify({ type: 'track', event: 'After', userId: 'u-giant', messageId: 'after-giant' });
    const rejects = join(dir, 'giant.rejects.ndjson');
    const result = await cli(['-', '--write-key', writeKey, '--rejects', rejects], Buffer.concat([giant, Buffer.from(`\n${after}\n`)]));
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('imported 2 records: 1 accepted, 0 duplicate, 1 rejected');
    const [reject] = readFileSync(rejects, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { line: number; reason: string; text: string });
    expect(reject).toMatchObject({ line: 1, reason: expect.stringMatching(/longer than 8388608 bytes/) });
    expect(reject?.text.length).toBeLessThan(1000);
  });

  it('never writes its rejects over the file it imports, and leaves no rejects of an earlier run behind', async () => {
    const file = join(dir, 'self.ndjson');
    const content = [
      JSON.stringify({ type: 'track', event: 'Self' }),
      ...Array.from({ length: 5 }, (_, i) => lines[0]?.replace('hist-1', `self-${i}`)),
    ].join('\n');
    writeFileSync(file, content);
    const refused = await cli([file, '--write-key', writeKey, '--rejects', join(dir, '.', 'self.ndjson')]);
    expect([refused.status, refused.stderr.trim()]).toEqual([
      1,
      expect.stringMatching(/^intake: the rejects would overwrite the file being imported/),
    ]);
    expect(readFileSync(file, 'utf8')).toBe(content);

    const clean = join(dir, 'clean.ndjson');
    writeFileSync(clean, lines[1] ?? '');
    writeFileSync(`${clean}.rejects.ndjson`, '{"line": 9, "reason": "from an earlier run"}\n');
    const result = await cli([clean, '--write-key', writeKey]);
    expect(result.stdout).toContain('0 rejected');
    expect(() => readFileSync(`${clean}.rejects.ndjson`)).toThrow();
  });

  it('stops at an address that is not Intake, and fails when every record is rejected', async () => {
    const file = join(dir, 'wrong-url.ndjson');
    writeFileSync(file, JSON.stringify({ type: 'identify', userId: 'u-wrong-url', traits: { plan: 'basic' } }));
    const wrongPath = await cli([file, '--write-key', writeKey], undefined, { INTAKE_URL: `${baseUrl}/nope` });
    expect([wrongPath.status, wrongPath.stderr.trim()]).toEqual([
      1,
      `intake: ${baseUrl}/nope/v1/import is not Intake's import endpoint (HTTP 404): check --url or INTAKE_URL`,
    ]);
    const noScheme = await cli([file, '--write-key', writeKey, '--url', 'localhost:8000']);
    expect(noScheme.status).toBe(2);
    expect(noScheme.stderr).toContain('--url must be an http:// or https:// address');
    // Refused before any request, rather than retried as a server that is down.
    const badPort = await cli([file, '--write-key', writeKey, '--url', 'http://127.0.0.1:99999']);
    expect([badPort.status, badPort.stderr.trim()]).toEqual([2, 'intake import: --url is not a valid address: "http://127.0.0.1:99999"']);
    // The server's own settings are none of its business.
    const serverSettings = await cli([file, '--write-key', writeKey], undefined, { DATABASE_URL: 'mysql://x', LOG_LEVEL: 'verbose' });
    expect([serverSettings.status, serverSettings.stdout]).toEqual([0, expect.stringContaining('1 accepted')]);
    // Empty is unset: INTAKE_URL left empty (a compose file's `${INTAKE_URL:-}`) means the local server on PORT.
    const emptyUrl = await cli([file, '--write-key', writeKey], undefined, { INTAKE_URL: '', PORT: new URL(baseUrl).port });
    expect([emptyUrl.status, emptyUrl.stdout]).toEqual([0, expect.stringContaining('1 duplicate')]);

    const bad = join(dir, 'all-bad.ndjson');
    writeFileSync(bad, [lines[2], lines[3]].join('\n'));
    const allRejected = await cli([bad, '--write-key', writeKey]);
    expect(allRejected.status).toBe(1);
    expect(allRejected.stdout).toContain('0 accepted, 0 duplicate, 2 rejected');
  });
});
