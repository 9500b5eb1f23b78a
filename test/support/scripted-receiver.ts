import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ScriptedRequest {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly webhookId: string;
  /** The status answered (undefined while the answer is pending or when the handler hung up). */
  status?: number;
}

/** A status, a status with headers, or 'hang' (no answer). */
export type ScriptedAnswer = number | { readonly status: number; readonly headers: Record<string, string> } | 'hang';

export interface Script {
  (request: ScriptedRequest, index: number): Promise<ScriptedAnswer> | ScriptedAnswer;
}

export interface ScriptedReceiver {
  readonly url: string;
  readonly requests: ScriptedRequest[];
  /** The most requests handled at once. */
  readonly maxConcurrent: number;
  setScript(script: Script): void;
  waitFor(accept: (requests: ScriptedRequest[]) => boolean, timeoutMs?: number): Promise<ScriptedRequest[]>;
  close(): Promise<void>;
}

/** A loopback webhook receiver whose answers (status, delay, hanging) a test scripts per request. */
export async function startScriptedReceiver(script: Script = () => 200, port = 0): Promise<ScriptedReceiver> {
  const requests: ScriptedRequest[] = [];
  let current = script;
  let concurrent = 0;
  let maxConcurrent = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request: ScriptedRequest = {
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        webhookId: String(req.headers['webhook-id']),
      };
      requests.push(request);
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      void Promise.resolve(current(request, requests.length - 1)).then((answer) => {
        concurrent--;
        if (answer === 'hang') return;
        const { status, headers } = typeof answer === 'number' ? { status: answer, headers: {} } : answer;
        request.status = status;
        res.writeHead(status, headers).end('ok');
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    requests,
    get maxConcurrent() {
      return maxConcurrent;
    },
    setScript(next) {
      current = next;
    },
    async waitFor(accept, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (!accept(requests)) {
        if (Date.now() > deadline) throw new Error(`receiver condition not reached after ${requests.length} requests`);
        await new Promise((r) => setTimeout(r, 10));
      }
      return requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
