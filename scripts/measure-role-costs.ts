// Measures what one event costs each role of the distributed mode: CPU time, PostgreSQL row writes and
// NATS messages. Not a benchmark of speed: it sends a fixed load, waits until every role has caught up,
// and divides what each process and schema spent by the events sent. Feeds the capacity model of
// docs/distributed.md. Usage: node --import tsx scripts/measure-role-costs.ts [items] [touches]
// Needs PostgreSQL (MEASURE_POSTGRES_URL, default the test database) and the nats-server binary.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { startPrivateNatsServer } from '../src/shared/messaging/nats/private-nats-server.js';
import { startServerProcess, type ServerProcess } from '../test/support/server-process.js';

const ROLES = ['ingestion', 'validation', 'processing', 'query', 'routing', 'statistics', 'tracking', 'attribution'] as const;
const ITEMS = Number(process.argv[2] ?? 4000);
const TOUCHES = Number(process.argv[3] ?? 4000);
const postgresUrl = process.env.MEASURE_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const token = randomBytes(16).toString('hex');
const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
const TICKS_PER_SECOND = 100; // USER_HZ on Linux

const prefix = `measure_${randomBytes(4).toString('hex')}_`;
const natsDir = mkdtempSync(join(tmpdir(), 'intake-measure-'));
const nats = await startPrivateNatsServer(natsDir);
const db = new pg.Client({ connectionString: postgresUrl });
await db.connect();
const processes = new Map<string, ServerProcess>();

/** User + system CPU of a process, in microseconds. */
function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return ((Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND) * 1e6;
}

/** Rows inserted, updated and deleted per schema, from PostgreSQL's statistics (flushed first). */
async function rowWrites(): Promise<Map<string, number>> {
  await db.query('SELECT pg_stat_force_next_flush()').catch(() => undefined);
  await new Promise((r) => setTimeout(r, 1200));
  const rows = await db.query<{ schemaname: string; writes: string }>(
    `SELECT schemaname, sum(n_tup_ins + n_tup_upd + n_tup_del) AS writes FROM pg_stat_user_tables
     WHERE schemaname LIKE $1 GROUP BY schemaname`,
    [`${prefix}%`],
  );
  return new Map(rows.rows.map((row) => [row.schemaname.slice(prefix.length), Number(row.writes)]));
}

/** Messages in the stream, and messages delivered to each durable consumer. */
async function natsCounts(): Promise<{ stored: number; delivered: Map<string, number>; pending: number }> {
  const connection = await connect({ servers: nats.url });
  try {
    const jsm = await jetstreamManager(connection);
    const stream = await jsm.streams.info('INTAKE');
    const delivered = new Map<string, number>();
    let pending = 0;
    for await (const consumer of jsm.consumers.list('INTAKE')) {
      delivered.set(consumer.name, consumer.delivered.consumer_seq);
      pending += consumer.num_pending + consumer.num_ack_pending;
    }
    return { stored: stream.state.messages, delivered, pending };
  } finally {
    await connection.close();
  }
}

async function snapshot() {
  const cpu = new Map([...processes].map(([role, p]) => [role, cpuMicros(p.process.pid ?? 0)]));
  return { cpu, rows: await rowWrites(), nats: await natsCounts() };
}

async function settle(): Promise<void> {
  // Caught up: the relays have published everything (the stream stops growing) and no consumer has work left.
  let last = -1;
  for (;;) {
    await new Promise((r) => setTimeout(r, 1000));
    const counts = await natsCounts();
    if (counts.pending === 0 && counts.stored === last) return;
    last = counts.stored;
  }
}

async function send(count: number, request: (i: number) => Promise<Response>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < count) {
        const response = await request(next++);
        if (response.status !== 201) throw new Error(`status ${response.status}: ${await response.text()}`);
      }
    }),
  );
}

async function phase(name: string, events: number, load: () => Promise<void>) {
  await settle();
  const before = await snapshot();
  const started = Date.now();
  await load();
  await settle();
  const after = await snapshot();
  console.log(`\n## ${name}: ${events} events sent, caught up after ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log('| role | CPU µs / event | PostgreSQL row writes / event | NATS deliveries / event |');
  console.log('| --- | ---: | ---: | ---: |');
  for (const role of ROLES) {
    const cpu = ((after.cpu.get(role) ?? 0) - (before.cpu.get(role) ?? 0)) / events;
    const rows = ((after.rows.get(role) ?? 0) - (before.rows.get(role) ?? 0)) / events;
    let delivered = 0;
    for (const [consumer, n] of after.nats.delivered)
      if (consumer.startsWith(`${role}-`)) delivered += n - (before.nats.delivered.get(consumer) ?? 0);
    console.log(`| ${role} | ${cpu.toFixed(0)} | ${rows.toFixed(2)} | ${(delivered / events).toFixed(2)} |`);
  }
  console.log(`NATS messages stored per event: ${((after.nats.stored - before.nats.stored) / events).toFixed(2)}`);
}

try {
  for (const role of ROLES) {
    const env = { DATABASE_URL: postgresUrl, NATS_URL: nats.url, DB_SCHEMA_PREFIX: prefix, ADMIN_TOKEN: token, ROLE: role };
    processes.set(role, await startServerProcess(env, ['serve'], 120_000));
  }
  const url = (role: string) => processes.get(role)?.url ?? '';
  await phase('partner items (POST /ingest → validation → processing → query, statistics, routing)', ITEMS, () =>
    send(ITEMS, (i) =>
      fetch(`${url('ingestion')}/ingest`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ partner_id: `p${i % 20}`, event_type: 'order', payload: { n: i, email: `u${i}@example.com` } }),
      }),
    ),
  );
  await phase('tracking events (POST /api/v1/tracking/events → attribution)', TOUCHES, () =>
    send(TOUCHES, (i) =>
      fetch(`${url('tracking')}/api/v1/tracking/events`, {
        method: 'POST',
        headers,
        body: JSON.stringify({
          partner_id: `p${i % 20}`,
          campaign_id: `c${i % 50}`,
          visitor_id: `v-${i % 1000}`,
          interaction_type: 'click',
          source_url: 'https://blog.example.com/post',
          destination_url: 'https://shop.example.com/',
        }),
      }),
    ),
  );
} finally {
  await Promise.all([...processes.values()].map((p) => p.kill('SIGTERM')));
  await nats.stop();
  rmSync(natsDir, { recursive: true, force: true });
  for (const role of ROLES) await db.query(`DROP SCHEMA IF EXISTS "${prefix}${role}" CASCADE`);
  await db.end();
}
