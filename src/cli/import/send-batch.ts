import { setTimeout as sleep } from 'node:timers/promises';

/** The server's verdict on one record of a batch. */
export type Verdict = { readonly status: 'accepted' | 'duplicate' } | { readonly status: 'rejected'; readonly reason: string };

export interface Endpoint {
  readonly url: string;
  readonly headers: Record<string, string>;
  /** The request body for these records. */
  body(records: readonly object[]): object;
  /** The verdict of each record from a 200 answer. */
  verdicts(answer: unknown, count: number): Verdict[];
}

export class ImportRefused extends Error {}

const ATTEMPTS = 6;

/**
 * Sends one batch and answers a verdict per record. Network failures, 429 and 5xx are retried with
 * backoff: every record carries its idempotency key, so a batch stored before its answer was lost
 * comes back as duplicates. A 400 or 403 rejects every record of the batch with the server's reason.
 */
export async function sendBatch(endpoint: Endpoint, records: readonly object[], retryDelayMs = 250): Promise<Verdict[]> {
  let lastError = '';
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    if (attempt > 0) await sleep(retryDelayMs * 2 ** (attempt - 1));
    let response: Response;
    try {
      response = await fetch(endpoint.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...endpoint.headers },
        body: JSON.stringify(endpoint.body(records)),
      });
    } catch (error) {
      // "fetch failed" alone names neither the address nor why: the cause does (ECONNREFUSED, ENOTFOUND).
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      lastError = `${(error as Error).message}${cause ? ` (${cause.code ?? cause.message})` : ''}`;
      continue;
    }
    const text = await response.text();
    const answer = parse(text);
    const problem = (answer ?? {}) as { code?: string; detail?: string; errors?: Array<{ path: string; message: string }> };
    // Another server, or a wrong path in --url: each record would be rejected one by one with its 404.
    if (
      (response.status === 200 && answer === undefined) ||
      response.status === 405 ||
      (response.status === 404 && problem.code === 'route.not-found') ||
      (response.status === 404 && answer === undefined)
    ) {
      throw new ImportRefused(`${endpoint.url} is not Intake's import endpoint (HTTP ${response.status}): check --url or INTAKE_URL`);
    }
    if (response.status === 200) return endpoint.verdicts(answer, records.length);
    if (response.status === 429 || response.status >= 500) {
      lastError = `HTTP ${response.status}`;
      continue;
    }
    // A key the server does not know stops the import; one that may not write where these records go
    // (a partner item of another application) rejects them, and the import goes on.
    if (response.status === 401) throw new ImportRefused(`the server refused the credentials: ${problem.detail ?? response.status}`);
    return records.map((_, index) => ({ status: 'rejected', reason: reasonFor(index, records.length, problem, response.status) }));
  }
  throw new ImportRefused(`no Intake took a batch at ${endpoint.url} after ${ATTEMPTS} attempts: ${lastError}`);
}

/** The part of a whole-batch problem that concerns one record (`batch[3].userId ...`), or all of it. */
function reasonFor(
  index: number,
  count: number,
  problem: { detail?: string; errors?: Array<{ path: string; message: string }> },
  status: number,
): string {
  const own = (problem.errors ?? []).filter(
    (e) => e.path.startsWith(`batch[${index}].`) || e.path.startsWith(`events[${index}]`) || count === 1,
  );
  if (own.length > 0) return own.map((e) => `${e.path.replace(/^(batch|events)\[\d+\]\.?/, '')} ${e.message}`.trim()).join('; ');
  return problem.detail ?? `HTTP ${status}`;
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
