import { setTimeout as sleep } from 'node:timers/promises';
import { parseRetryAfter } from '../../shared/http/retry-after.js';
import { uuidV7Time } from '../../shared/ids.js';

/** The server's verdict on one record of a batch. */
export type Verdict =
  | { readonly status: 'accepted'; readonly eventId?: string }
  /** `eventId`: the first event stored under the record's key, as the server's receipt names it. */
  | { readonly status: 'duplicate'; readonly eventId?: string }
  | { readonly status: 'rejected'; readonly reason: string };

export interface Endpoint {
  readonly url: string;
  readonly headers: Record<string, string>;
  /** The request body for these records. */
  body(records: readonly object[]): object;
  /** The verdict of each record from a 200 answer. */
  verdicts(answer: unknown, count: number): Verdict[];
}

export interface SendOptions {
  /** The first wait before a retry, doubled after each up to `MAX_BACKOFF_MS`. */
  readonly retryDelayMs?: number;
  /** How long one batch may be retried before the import gives up. */
  readonly retryBudgetMs?: number;
  /** How long a request may wait for its whole answer. */
  readonly timeoutMs?: number;
  /** Told one line for each retry, so that a long wait is not taken for a hang. */
  readonly notify?: (line: string) => void;
  /** Aborted to stop at once: a request or a wait before a retry fails with the abort. */
  readonly signal?: AbortSignal;
  /** The event ids this run's earlier batches were answered with (see `afterLostAnswer`). */
  readonly known?: ReadonlySet<string>;
}

export class ImportRefused extends Error {}

/** Long enough to ride out a failover or a restart (Intake asks for 5 s, or 30 s when full). */
export const RETRY_BUDGET_MS = 2 * 60_000;
const MAX_BACKOFF_MS = 10_000;
/** A Retry-After beyond this is taken as this: the budget, not the server, decides when to give up. */
const MAX_RETRY_AFTER_MS = 60_000;
export const REQUEST_TIMEOUT_MS = 60_000;

/** `unknown`: the request may have been stored all the same (no answer came, or the connection broke). */
type Outcome = { verdicts: Verdict[] } | { retry: string; retryAfterMs: number | undefined; unknown?: true } | { tooLarge: string };

/**
 * The verdicts of a batch sent again after an attempt whose answer was lost: a record that attempt
 * stored comes back a duplicate, with the id the lost attempt gave its event. An id made after that
 * attempt began (UUIDv7 carries its time) and not met before in this run (a record repeated in the
 * input, stored by an earlier batch) is the lost attempt's, and the record counts as accepted once.
 */
function afterLostAnswer(verdicts: Verdict[], lostAt: number, known: ReadonlySet<string>): Verdict[] {
  const taken = new Set<string>();
  return verdicts.map((verdict) => {
    if (verdict.status !== 'duplicate' || verdict.eventId === undefined) return verdict;
    const made = uuidV7Time(verdict.eventId);
    if (made === undefined || made < lostAt || known.has(verdict.eventId) || taken.has(verdict.eventId)) return verdict;
    taken.add(verdict.eventId);
    return { status: 'accepted', eventId: verdict.eventId };
  });
}

/**
 * Sends one batch and answers a verdict per record. A batch the server finds too large (413) is sent
 * again in halves, down to single records, of which only one still too large is rejected. A 400 or 403
 * rejects every record of the batch with the server's reason.
 */
export async function sendBatch(endpoint: Endpoint, records: readonly object[], options: SendOptions = {}): Promise<Verdict[]> {
  const outcome = await sendWithRetries(endpoint, records, options);
  if (!('tooLarge' in outcome)) return outcome.verdicts;
  if (records.length === 1) return [{ status: 'rejected', reason: outcome.tooLarge }];
  const half = Math.ceil(records.length / 2);
  const first = await sendBatch(endpoint, records.slice(0, half), options);
  return [...first, ...(await sendBatch(endpoint, records.slice(half), options))];
}

/**
 * Network failures, timeouts, 429 and 5xx are retried, after the server's Retry-After or a doubling
 * backoff, whichever is longer, until the time budget is spent: every record carries its idempotency
 * key, so a batch stored before its answer was lost comes back as duplicates, counted as accepted
 * where the ids show the lost attempt stored them (`afterLostAnswer`).
 */
async function sendWithRetries(
  endpoint: Endpoint,
  records: readonly object[],
  options: SendOptions,
): Promise<Exclude<Outcome, { retry: string }>> {
  const budget = options.retryBudgetMs ?? RETRY_BUDGET_MS;
  const started = performance.now();
  let backoff = options.retryDelayMs ?? 250;
  let lostAt: number | undefined;
  for (;;) {
    const sentAt = Date.now();
    const outcome = await attempt(endpoint, records, options.timeoutMs ?? REQUEST_TIMEOUT_MS, options.signal);
    if ('verdicts' in outcome && lostAt !== undefined)
      return { verdicts: afterLostAnswer(outcome.verdicts, lostAt, options.known ?? new Set()) };
    if (!('retry' in outcome)) return outcome;
    if (outcome.unknown) lostAt ??= sentAt;
    const wait = Math.max(outcome.retryAfterMs ?? 0, backoff);
    const spent = performance.now() - started;
    if (spent + wait > budget) {
      throw new ImportRefused(`no Intake took a batch at ${endpoint.url} in ${seconds(spent)} of retries: ${outcome.retry}`);
    }
    options.notify?.(`${endpoint.url}: ${outcome.retry}; retrying a batch of ${records.length} in ${seconds(wait)}`);
    await sleep(wait, undefined, { signal: options.signal });
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
  }
}

async function attempt(endpoint: Endpoint, records: readonly object[], timeoutMs: number, stop?: AbortSignal): Promise<Outcome> {
  const signal = stop ? AbortSignal.any([AbortSignal.timeout(timeoutMs), stop]) : AbortSignal.timeout(timeoutMs);
  let response: Response;
  let text: string;
  try {
    response = await fetch(endpoint.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...endpoint.headers },
      body: JSON.stringify(endpoint.body(records)),
      signal,
    });
    text = await response.text();
  } catch (error) {
    stop?.throwIfAborted();
    if (signal.aborted) return { retry: `no answer within ${seconds(timeoutMs)}`, retryAfterMs: undefined, unknown: true };
    // "fetch failed" alone names neither the address nor why: the cause does (ECONNREFUSED, ENOTFOUND).
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    // Without a cause the request was never sent (a key that is no valid header): no retry mends that.
    // The quoted value undici names would be the key itself, which has no place on a terminal or in a log.
    if (!cause) throw new ImportRefused(`cannot send to ${endpoint.url}: ${(error as Error).message.replace(/".*"/s, 'a value')}`);
    return { retry: `${(error as Error).message} (${cause.code ?? cause.message})`, retryAfterMs: undefined, unknown: true };
  }
  return answered(endpoint, records.length, response, text);
}

function answered(endpoint: Endpoint, count: number, response: Response, text: string): Outcome {
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
  if (response.status === 200) return { verdicts: endpoint.verdicts(answer, count) };
  if (response.status === 429 || response.status >= 500) {
    return {
      retry: `HTTP ${response.status}${problem.detail ? ` (${problem.detail})` : ''}`,
      retryAfterMs: retryAfterMs(response.headers.get('retry-after')),
    };
  }
  if (response.status === 413) return { tooLarge: reasonFor(0, 1, problem, response.status) };
  // A key the server does not know stops the import; one that may not write where these records go
  // (a partner item of another application) rejects them, and the import goes on.
  if (response.status === 401) throw new ImportRefused(`the server refused the credentials: ${problem.detail ?? response.status}`);
  return {
    verdicts: Array.from({ length: count }, (_, index) => ({
      status: 'rejected',
      reason: reasonFor(index, count, problem, response.status),
    })),
  };
}

/** Retry-After in seconds or as an HTTP date, capped; undefined when absent or unreadable. */
/** The server's `Retry-After` in milliseconds, at most MAX_RETRY_AFTER_MS. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  const ms = parseRetryAfter(header ?? undefined, new Date(now));
  return ms === undefined ? undefined : Math.min(ms, MAX_RETRY_AFTER_MS);
}

const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`;

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
