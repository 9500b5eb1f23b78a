// autocannon with a fresh id in every request body: each `[<id>]` of the body becomes a random UUID.
// autocannon 8.0.0's own --idReplacement declares a Content-Length that does not match the body it
// sends (mcollina/autocannon#539), so servers wait for bytes that never come; this drives autocannon
// through its API with a setupRequest instead. Plain .mjs, like raw-http-server.mjs: no TypeScript
// loader in a load generator. Argument: one JSON object, autocannon's options plus `bodyFile`.
// Prints autocannon's result as JSON on stdout, like `autocannon --json`.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

const { bodyFile, ...options } = JSON.parse(process.argv[2] ?? '{}');
const template = readFileSync(bodyFile, 'utf8');

autocannon(
  {
    ...options,
    json: true,
    requests: [{ setupRequest: (request) => ({ ...request, body: template.replaceAll('[<id>]', randomUUID()) }) }],
  },
  (error) => {
    if (error) {
      process.stderr.write(`${error.stack ?? error}\n`);
      process.exitCode = 1;
    }
  },
);
