// The HTTP ceiling of this machine: a bare node:http server doing the minimum an ingest endpoint must
// do (read the body, JSON.parse it, check its shape, answer 201 with a small JSON), and nothing else.
// Plain .mjs rather than .ts on purpose: Intake runs compiled JavaScript from dist/, so the baseline must
// not carry a TypeScript loader (tsx) in its process, which would skew its memory figure.
import { createServer } from 'node:http';

const port = Number(process.env.PORT ?? 0);
const host = process.env.HOST ?? '127.0.0.1';
const BODY_LIMIT = 1024 * 1024;

let nextId = 0;

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/health') return send(res, 200, { status: 'ok' });
  if (req.method !== 'POST' || req.url !== '/ingest') return send(res, 404, { error: 'not found' });

  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > BODY_LIMIT) {
      send(res, 413, { error: 'body too large' });
      req.destroy();
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks, size).toString('utf8'));
    } catch {
      return send(res, 400, { error: 'invalid JSON' });
    }
    const payload = body?.payload;
    if (typeof body?.partner_id !== 'string' || typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
      return send(res, 400, { error: 'partner_id must be a string and payload an object' });
    }
    nextId += 1;
    send(res, 201, { id: String(nextId), partner_id: body.partner_id, status: 'ingested' });
  });
});

server.listen(port, host, () => {
  const address = server.address();
  process.stdout.write(`${JSON.stringify({ msg: 'raw-http-server listening', port: address.port })}\n`);
});

const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
