import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AckPolicy, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { messageBusContract } from '../message-bus.contract.js';
import { natsMessageBus } from './nats-message-bus.js';
import { natsServerAvailable, startPrivateNatsServer } from './private-nats-server.js';

const url = process.env.TEST_NATS_URL || undefined;
if (!url) console.warn('skipping NATS JetStream suites: TEST_NATS_URL is not set');

describe.skipIf(!url)('nats message bus', () => {
  messageBusContract('nats jetstream (stream per test)', async () => {
    const servers = url ?? '';
    const suffix = randomBytes(6).toString('hex');
    const stream = `INTAKE_TEST_${suffix}`;
    const prefix = `test_${suffix}`;
    const bus = natsMessageBus({ servers, stream, subjects: [`${prefix}.>`] });
    return {
      bus,
      prefix,
      async close() {
        await bus.close();
        const admin = await connect({ servers });
        try {
          await (await jetstreamManager(admin)).streams.delete(stream);
        } finally {
          await admin.close();
        }
      },
    };
  });
});

describe.skipIf(!url)('nats message bus: concurrent handling', () => {
  it('handles messages of different keys at once and messages of one key one after the other, in order', async () => {
    const servers = url ?? '';
    const suffix = randomBytes(6).toString('hex');
    const stream = `INTAKE_TEST_${suffix}`;
    const bus = natsMessageBus({ servers, stream, subjects: [`c_${suffix}.>`] });
    try {
      const running = new Set<string>();
      const overlaps = { sameKey: 0, otherKeys: 0 };
      const seen: Record<string, number[]> = { a: [], b: [], c: [] };
      const total = 30;
      let handled = 0;
      const done = new Promise<void>((resolve) => {
        void bus.consume(
          'concurrent',
          [`c_${suffix}.>`],
          async (message) => {
            const { key, n } = message.data as { key: string; n: number };
            if (running.has(key)) overlaps.sameKey += 1;
            if (running.size > 0) overlaps.otherKeys += 1;
            running.add(key);
            await new Promise((r) => setTimeout(r, 10));
            running.delete(key);
            seen[key]?.push(n);
            if (++handled === total) resolve();
          },
          {
            maxDeliver: 3,
            ackWaitMs: 5000,
            onParked: async () => undefined,
            concurrency: 8,
            keyOf: (m) => (m.data as { key: string }).key,
          },
        );
      });
      for (let n = 0; n < total; n++) {
        const key = ['a', 'b', 'c'][n % 3] ?? 'a';
        await bus.publish(`c_${suffix}.x`, { id: `m-${suffix}-${n}`, type: 'T', data: { key, n }, metadata: {} });
      }
      await done;
      expect(overlaps.sameKey).toBe(0);
      expect(overlaps.otherKeys).toBeGreaterThan(0);
      for (const key of ['a', 'b', 'c']) expect(seen[key]).toEqual([...(seen[key] ?? [])].sort((x, y) => x - y));
    } finally {
      await bus.close();
      const admin = await connect({ servers });
      try {
        await (await jetstreamManager(admin)).streams.delete(stream);
      } finally {
        await admin.close();
      }
    }
  });
});

describe.skipIf(!url)('nats message bus: a consumer of several roles', () => {
  it('is handed no other role’s messages, reports and rewinds as one, and takes over from an older consumer of its name', async () => {
    const servers = url ?? '';
    const suffix = randomBytes(6).toString('hex');
    const stream = `INTAKE_TEST_${suffix}`;
    const p = `r_${suffix}`;
    const bus = natsMessageBus({ servers, stream, subjects: [`${p}.>`] });
    const admin = await connect({ servers });
    const jsm = await jetstreamManager(admin);
    const family = async () => {
      const infos = [];
      for await (const info of jsm.consumers.list(stream)) if (info.name.startsWith('status')) infos.push(info);
      return infos;
    };
    const options = { maxDeliver: 3, ackWaitMs: 5000, onParked: async () => undefined, concurrency: 8 };
    try {
      let n = 0;
      const publish = (subject: string) =>
        bus.publish(`${p}.${subject}`, { id: `m-${suffix}-${n++}`, type: subject.split('.')[1] ?? '', data: {}, metadata: {} });
      // Before: a consumer under the name, as a server before 2.10 was given it (one filter over everything), which handled the first two.
      for (const subject of ['validation.Valid', 'processing.Processed']) await publish(subject);
      await bus
        .consume('status', [`${p}.>`], async () => undefined, options)
        .then(async (old) => {
          await waitFor(async () => (await bus.progress('status'))?.pending === 0);
          await old.stop();
        });
      for (const subject of ['validation.Valid', 'tracking.Tracked', 'tracking.Tracked', 'processing.Processed', 'validation.Schema'])
        await publish(subject);

      const received: string[] = [];
      const consumption = await bus.consume(
        'status',
        [`${p}.validation.Valid`, `${p}.processing.Processed`],
        async (m) => void received.push(m.subject),
        options,
      );
      await waitFor(() => received.length === 2);
      await waitFor(async () => (await bus.progress('status'))?.pending === 0);
      // Only the messages after the older consumer's acknowledgements, and none of the tracking role's.
      expect(received.sort()).toEqual([`${p}.processing.Processed`, `${p}.validation.Valid`]);
      const consumers = await family();
      const [major = 0, minor = 0] = (admin.info?.version ?? '0.0').split('.').map(Number);
      if (major > 2 || (major === 2 && minor >= 10)) {
        expect(consumers.map((info) => info.name)).toEqual(['status']);
      } else {
        // One filter per consumer: one consumer per role, and the older consumer gone.
        expect(consumers.map((info) => info.name).sort()).toEqual(['status--processing', 'status--validation']);
      }
      expect(consumers.reduce((sum, info) => sum + info.delivered.consumer_seq, 0)).toBe(2);

      await consumption.stop();
      await bus.rewind('status');
      expect(await family()).toEqual([]);
      expect(await bus.progress('status')).toBeUndefined();
    } finally {
      await bus.close();
      await jsm.streams.delete(stream).catch(() => false);
      await admin.close();
    }
  });
});

describe.skipIf(!url)('nats message bus: a consumer kept with a wider filter', () => {
  it('narrows the filter of a consumer an earlier version left wider, and hands its handler only the subjects asked for', async () => {
    const servers = url ?? '';
    const suffix = randomBytes(6).toString('hex');
    const stream = `INTAKE_TEST_${suffix}`;
    const p = `w_${suffix}`;
    const bus = natsMessageBus({ servers, stream, subjects: [`${p}.>`] });
    const admin = await connect({ servers });
    const jsm = await jetstreamManager(admin);
    const options = { maxDeliver: 3, ackWaitMs: 5000, onParked: async () => undefined, concurrency: 8 };
    try {
      let n = 0;
      const publish = (subject: string) =>
        bus.publish(`${p}.${subject}`, { id: `m-${suffix}-${n++}`, type: subject.split('.')[1] ?? '', data: {}, metadata: {} });
      await publish('ingestion.First');
      // An earlier version left the durable consumer with one filter over every subject.
      await jsm.consumers.add(stream, { durable_name: 'narrow', filter_subject: `${p}.>`, ack_policy: AckPolicy.Explicit });
      for (const subject of ['ingestion.Wanted', 'ingestion.Other', 'ingestion.Wanted']) await publish(subject);
      const received: string[] = [];
      const consumption = await bus.consume('narrow', [`${p}.ingestion.Wanted`], async (m) => void received.push(m.subject), options);
      await waitFor(async () => (await bus.progress('narrow'))?.pending === 0);
      await consumption.stop();
      expect(received).toEqual([`${p}.ingestion.Wanted`, `${p}.ingestion.Wanted`]);
      // The server took the narrower filter (NATS 2.9.10 does; one that refuses leaves the subject check to the consumer).
      expect((await jsm.consumers.info(stream, 'narrow')).config.filter_subject).toBe(`${p}.ingestion.Wanted`);
    } finally {
      await bus.close();
      await jsm.streams.delete(stream).catch(() => false);
      await admin.close();
    }
  });
});

async function waitFor(check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.skipIf(!url)('nats message bus: one deployment per stream', () => {
  it('refuses a stream another deployment uses, and claims one made before streams named theirs', async () => {
    const servers = url ?? '';
    const suffix = randomBytes(6).toString('hex');
    const stream = `INTAKE_TEST_${suffix}`;
    const subjects = [`d_${suffix}.>`];
    const admin = await connect({ servers });
    const jsm = await jetstreamManager(admin);
    // As an earlier release left it: no deployment named.
    await jsm.streams.add({ name: stream, subjects });
    const message = (n: number) => ({ id: `m-${suffix}-${n}`, type: 'Seen', data: {}, metadata: {} });
    const ours = natsMessageBus({ servers, stream, subjects, deployment: 'database test, schemas a_…' });
    const theirs = natsMessageBus({ servers, stream, subjects, deployment: 'database test, schemas b_…' });
    const ourReplica = natsMessageBus({ servers, stream, subjects, deployment: 'database test, schemas a_…' });
    try {
      await ours.publish(`d_${suffix}.ingestion.Seen`, message(1));
      expect((await jsm.streams.info(stream)).config.description).toBe('Intake deployment: database test, schemas a_…');

      await expect(theirs.publish(`d_${suffix}.ingestion.Seen`, message(2))).rejects.toThrow(
        /NATS stream INTAKE_TEST_\w+ belongs to another Intake deployment \(database test, schemas a_…\), not to this one \(database test, schemas b_…\)/,
      );
      await ourReplica.publish(`d_${suffix}.ingestion.Seen`, message(3));
      expect((await jsm.streams.info(stream)).state.messages).toBe(2);
    } finally {
      await Promise.all([ours.close(), theirs.close(), ourReplica.close()]);
      await jsm.streams.delete(stream);
      await admin.close();
    }
  });
});

describe.skipIf(!url)('nats message bus: a tls:// server', () => {
  it('insists on TLS, never talking in the clear to a server that offers none', async () => {
    const plain = new URL(url ?? '');
    const bus = natsMessageBus({ servers: `tls://${plain.host}`, stream: 'TLS_ONLY', subjects: ['tlsonly.>'], publishTimeoutMs: 2000 });
    try {
      await expect(bus.publish('tlsonly.x', { id: 'm1', type: 'X', data: {}, metadata: { schema_version: 1 } })).rejects.toThrow(
        /cannot reach NATS/,
      );
    } finally {
      await bus.close();
    }
  });
});

describe.skipIf(!natsServerAvailable())('nats message bus: a server asking for a user and password', () => {
  it('connects with the credentials of NATS_URL, whose host may have no dot (a docker-compose service name)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-nats-auth-'));
    const server = await startPrivateNatsServer(dir, { user: 'intake', pass: 's:cret' });
    const servers = `nats://intake:s%3Acret@localhost:${new URL(server.url).port}`;
    const bus = natsMessageBus({ servers, stream: 'AUTH', subjects: ['auth.>'], publishTimeoutMs: 2000 });
    try {
      await bus.publish('auth.x', { id: 'm1', type: 'X', data: {}, metadata: { schema_version: 1 } });

      const admin = await connect({ servers: server.url, user: 'intake', pass: 's:cret' });
      expect((await (await jetstreamManager(admin)).streams.info('AUTH')).state.messages).toBe(1);
      await admin.close();
    } finally {
      await bus.close();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
