import { performance } from 'node:perf_hooks';
import { Agent, errors as undiciErrors, request } from 'undici';
import { systemClock, type Clock } from '../../../shared/clock.js';
import { ValidationError } from '../../../shared/errors.js';
import type { DeliveryOutcome, DeliveryRequest, WebhookSender, WebhookTarget } from '../../application/destination.js';
import { isReservedHeader } from '../../domain/destination-config.js';
import { destinationPolicy } from './destination-policy.js';
import { DestinationRefusedError, guardedConnector, type Resolver } from './guarded-connector.js';
import { parseRetryAfter } from '../../../shared/http/retry-after.js';
import { signWithEach } from './standard-webhooks.js';

export interface UndiciWebhookSenderOptions {
  /** Host names, IPs and CIDRs that may be reached although not public (see `parseAllowedHosts`). */
  readonly allowedHosts?: readonly string[];
  /** The whole exchange, connection to the last byte read: 15 s, as receivers are told to answer fast. */
  readonly timeoutMs?: number;
  /** How much of a response body is read before the connection is dropped. */
  readonly maxResponseBytes?: number;
  /** How long the body may take once the status is known (1 s): the status decides, the body is only drained. */
  readonly bodyTimeoutMs?: number;
  readonly clock?: Clock;
  /** For tests that need DNS answers no real resolver gives (rebinding). */
  readonly resolve?: Resolver;
}

const USER_AGENT = 'Intake-Webhooks/1';

/**
 * Sends webhooks signed per Standard Webhooks over one keep-alive connection pool, refusing
 * non-public destinations at connection time, and turns every answer or failure into an outcome.
 */
export function undiciWebhookSender(options: UndiciWebhookSenderOptions = {}): WebhookSender {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const maxResponseBytes = options.maxResponseBytes ?? 64 * 1024;
  const bodyTimeoutMs = options.bodyTimeoutMs ?? 1000;
  const clock = options.clock ?? systemClock;
  const connect = guardedConnector(destinationPolicy(options.allowedHosts), {
    connectTimeoutMs: Math.min(timeoutMs, 10_000),
    ...(options.resolve === undefined ? {} : { resolve: options.resolve }),
  });
  const agent = new Agent({ connect, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });

  async function send(target: WebhookTarget, delivery: DeliveryRequest): Promise<DeliveryOutcome> {
    const startedAt = performance.now();
    const elapsed = () => Math.round(performance.now() - startedAt);
    const signal = AbortSignal.timeout(timeoutMs);
    let statusCode: number | undefined;
    try {
      const url = new URL(target.url);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        return { outcome: 'rejected', reason: `unsupported URL scheme ${url.protocol}`, durationMs: elapsed() };
      }
      const timestamp = Math.floor(clock.now().getTime() / 1000);
      const response = await request(url, {
        dispatcher: agent,
        method: 'POST',
        headers: {
          ...customHeaders(target.headers),
          'content-type': 'application/json',
          'webhook-id': delivery.deliveryId,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': signWithEach(signingSecretsOf(target), delivery.deliveryId, timestamp, delivery.body),
        },
        body: delivery.body,
        signal,
      });
      statusCode = response.statusCode;
      // The status decides, as soon as the headers are in: a receiver that answers 200 and then
      // trickles its body has the event. The body is never used, but reading it (up to a cap, for a
      // short while) lets the connection be reused; otherwise the connection is dropped.
      const outcome = classifyStatus(response.statusCode, response.headers['retry-after'], clock.now(), elapsed());
      await response.body
        .dump({ limit: maxResponseBytes, signal: AbortSignal.timeout(bodyTimeoutMs) })
        .catch(() => response.body.destroy());
      return outcome;
    } catch (error) {
      const durationMs = elapsed();
      const withStatus = statusCode === undefined ? {} : { statusCode };
      if (signal.aborted) return { outcome: 'retry', reason: `timed out after ${timeoutMs} ms`, ...withStatus, durationMs };
      return { ...classifyError(error), ...withStatus, durationMs };
    }
  }

  return {
    send,
    async close() {
      // Requests still open when the worker stopped waiting are cut, not awaited to their timeout.
      await agent.destroy();
    },
  };
}

/** The current secret first: a receiver that checks only the first signature checks the one it should have. */
const signingSecretsOf = (target: WebhookTarget) =>
  target.previousSigningSecret === undefined ? [target.signingSecret] : [target.signingSecret, target.previousSigningSecret];

function customHeaders(headers: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const allowed: Record<string, string> = { 'user-agent': USER_AGENT };
  for (const [name, value] of Object.entries(headers ?? {})) {
    // Refused on save; a rule stored before may still hold one.
    if (!isReservedHeader(name)) allowed[name.toLowerCase()] = value;
  }
  return allowed;
}

function classifyStatus(statusCode: number, retryAfter: string | string[] | undefined, now: Date, durationMs: number): DeliveryOutcome {
  if (statusCode >= 200 && statusCode < 300) return { outcome: 'delivered', statusCode, durationMs };
  const reason = `HTTP ${statusCode}`;
  if (statusCode === 410) return { outcome: 'gone', reason, statusCode, durationMs };
  // Both say how long to stay away (RFC 9110 §10.2.3): Intake's own ingest answers 503 with it when full.
  if (statusCode === 429 || statusCode === 503) {
    const retryAfterMs = parseRetryAfter(retryAfter, now);
    return { outcome: 'retry', reason, statusCode, ...(retryAfterMs === undefined ? {} : { retryAfterMs }), durationMs };
  }
  // The server timed out waiting for the request (408), or will not take it yet (425): both may pass.
  if (statusCode >= 500 || statusCode === 408 || statusCode === 425) return { outcome: 'retry', reason, statusCode, durationMs };
  // 3xx included: following a redirect would let a public receiver bounce us to a private address.
  return { outcome: 'rejected', reason, statusCode, durationMs };
}

type Failure = { readonly outcome: 'retry' | 'rejected'; readonly reason: string };

/** Only a refused address or an unusable configuration is final; network trouble is worth retrying. */
function classifyError(error: unknown): Failure {
  const refused = findInCauses(error, (cause) => cause instanceof DestinationRefusedError);
  if (refused !== undefined) return { outcome: 'rejected', reason: refused.message };
  if (error instanceof ValidationError || error instanceof undiciErrors.InvalidArgumentError || error instanceof TypeError) {
    return { outcome: 'rejected', reason: `invalid webhook configuration: ${describe(error)}` };
  }
  return { outcome: 'retry', reason: `request failed: ${describe(error)}` };
}

function findInCauses(error: unknown, matches: (cause: Error) => boolean): Error | undefined {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth++) {
    if (matches(cause)) return cause;
  }
  return undefined;
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = 'code' in error && typeof error.code === 'string' ? `${error.code} ` : '';
  return `${code}${error.message}`.trim();
}
