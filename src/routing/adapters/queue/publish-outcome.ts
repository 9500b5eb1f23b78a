import { performance } from 'node:perf_hooks';
import type { DeliveryOutcome, QueueTarget } from '../../application/destination.js';
import { withoutUrlCredentials } from '../../../shared/url-credentials.js';

/** What a publisher decides; `measured` adds the duration every outcome carries. */
export type PublishResult =
  { readonly outcome: 'delivered' } | { readonly outcome: 'retry' | 'rejected'; readonly reason: string; readonly refusesAll?: true };

export const delivered: PublishResult = { outcome: 'delivered' };

export const retry = (reason: string): PublishResult => ({ outcome: 'retry', reason });

export const rejected = (reason: string): PublishResult => ({ outcome: 'rejected', reason });

/**
 * A refusal no delivery to this destination would escape (credentials, permissions, no broker
 * configured): it counts against the destination's circuit, which then holds the backlog until the
 * cause is fixed, instead of dead-lettering every delivery at full speed.
 */
export const refusedAll = (reason: string): PublishResult => ({ outcome: 'rejected', reason, refusesAll: true });

export async function measured(publish: () => Promise<PublishResult>): Promise<DeliveryOutcome> {
  const startedAt = performance.now();
  const result = await publish();
  return { ...result, durationMs: Math.round(performance.now() - startedAt) };
}

/** The URL a target publishes to, or a rejection saying why there is none. */
export function brokerUrl(target: QueueTarget, defaultUrl: string | undefined): string | PublishResult {
  const url = target.url ?? defaultUrl;
  if (url === undefined || url === '') {
    return refusedAll(`no ${target.broker} URL: set destination_config.url or configure a default broker URL`);
  }
  return url;
}

/** Outcome reasons are shown to rule owners: never leak a password embedded in a broker URL (`u:pw@`, `?password=`). */
export const redactUrl = withoutUrlCredentials;

export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = 'code' in error && (typeof error.code === 'string' || typeof error.code === 'number') ? `${error.code} ` : '';
  return `${code}${error.message}`.trim();
}

/** Rejects with `message` when `work` takes longer than `ms`: brokers under pressure may never confirm. */
export async function withTimeout<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new PublishTimeoutError(message)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export class PublishTimeoutError extends Error {}
