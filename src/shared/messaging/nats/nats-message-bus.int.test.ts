import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { describe } from 'vitest';
import { messageBusContract } from '../message-bus.contract.js';
import { natsMessageBus } from './nats-message-bus.js';

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
