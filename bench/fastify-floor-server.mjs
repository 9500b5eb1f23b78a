// The framework floor: the same POST /ingest on Fastify (the HTTP framework Intake is built on), with a
// JSON schema for the body and the answer, and no storage, auth or logging behind it. Beside the
// node:http ceiling it shows how much of that ceiling the framework itself leaves on this machine.
// Plain .mjs, like raw-http-server.mjs: no TypeScript loader in a baseline's process.
import Fastify from 'fastify';

const port = Number(process.env.PORT ?? 0);
const host = process.env.HOST ?? '127.0.0.1';

const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
let nextId = 0;

app.get('/health', async () => ({ status: 'ok' }));
app.post(
  '/ingest',
  {
    schema: {
      body: {
        type: 'object',
        required: ['partner_id', 'payload'],
        properties: { partner_id: { type: 'string' }, event_type: { type: 'string' }, payload: { type: 'object' } },
      },
      response: {
        201: { type: 'object', properties: { id: { type: 'string' }, partner_id: { type: 'string' }, status: { type: 'string' } } },
      },
    },
  },
  async (request, reply) => {
    nextId += 1;
    return reply.code(201).send({ id: String(nextId), partner_id: request.body.partner_id, status: 'ingested' });
  },
);

const address = await app.listen({ port, host });
process.stdout.write(`${JSON.stringify({ msg: 'fastify-floor-server listening', address })}\n`);

const stop = () => app.close().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
