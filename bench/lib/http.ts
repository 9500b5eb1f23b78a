import { Pool } from 'undici';

export interface JsonResponse {
  readonly status: number;
  /** The parsed body; undefined when it was empty. */
  readonly body: unknown;
}

/**
 * A keep-alive HTTP client for the bench's own requests (set-up, probes, paced load, polling), with
 * at most `connections` sockets: requests beyond that wait in the pool's queue.
 */
export class JsonClient {
  private readonly pool: Pool;

  constructor(
    baseUrl: string,
    private readonly headers: Readonly<Record<string, string>>,
    connections = 8,
  ) {
    this.pool = new Pool(baseUrl, { connections, pipelining: 1 });
  }

  /** `body` is sent as given: callers that send the same body many times serialise it once. */
  async request(method: 'GET' | 'POST', path: string, body?: string | object): Promise<JsonResponse> {
    const payload = body === undefined || typeof body === 'string' ? body : JSON.stringify(body);
    const response = await this.pool.request({
      method,
      path,
      headers: payload === undefined ? this.headers : { ...this.headers, 'content-type': 'application/json' },
      body: payload,
    });
    const text = await response.body.text();
    return { status: response.statusCode, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
  }

  /** For set-up steps that must succeed: any other status stops the scenario with the answer in the message. */
  async expect(status: number, method: 'GET' | 'POST', path: string, body?: string | object): Promise<unknown> {
    const response = await this.request(method, path, body);
    if (response.status !== status) {
      throw new Error(
        `${method} ${path} answered ${response.status} (expected ${status}): ${JSON.stringify(response.body)?.slice(0, 500)}`,
      );
    }
    return response.body;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** `value.a.b...`, or undefined wherever the path does not lead through objects. */
export function prop(value: unknown, ...path: string[]): unknown {
  let current = value;
  for (const key of path) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}
