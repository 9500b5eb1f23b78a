import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { StorageHealth } from '../shared/event-store/storage-fault.js';
import type { Procedures } from '../shared/procedures.js';
import type { SubscriberStatus, Subscriptions } from '../shared/subscriptions/in-process-subscriptions.js';
import type { StorageCore } from './storage-core.js';

export interface StorageControl {
  status(): Promise<SubscriberStatus[]>;
  caughtUp(timeoutMs?: number): Promise<void>;
  replay(name: string): Promise<void>;
  retryParked(name: string, ref: number | string): Promise<void>;
  discardParked(name: string, ref: number | string): Promise<void>;
  /** The storage thread's own metrics, to merge into the HTTP thread's exposition. */
  metrics(): Promise<Array<MetricObjectWithValues<MetricValue<string>>>>;
  /** The store's last fault, until a commit succeeds again. */
  health(): Promise<StorageHealth | undefined>;
  /** Stops the subscribers and background work, drains the commits and closes the database. */
  stop(): Promise<void>;
}

/** The procedures that report on storage, which its client answers past its budget (see StorageBudget). */
const REPORTS = { status: 'subscriptions.status', metrics: 'storage.metrics', health: 'storage.health' } as const;
export const STORAGE_REPORTS: readonly string[] = Object.values(REPORTS);

/**
 * Operating what runs in the storage thread from the HTTP thread. Both threads call this with the
 * same procedures: the storage thread with its core (whose functions run), the HTTP thread without.
 */
export function storageControl(procedures: Procedures, core?: StorageCore): StorageControl {
  const local = (): StorageCore => {
    if (!core) throw new Error('storage control runs in the storage thread');
    return core;
  };
  return {
    status: procedures.define(REPORTS.status, () => local().subscriptions.status()),
    caughtUp: procedures.define('subscriptions.caught-up', (timeoutMs?: number) => local().subscriptions.caughtUp(timeoutMs)),
    replay: procedures.define('subscriptions.replay', (name: string) => local().subscriptions.replay(name)),
    retryParked: procedures.define('subscriptions.retry-parked', (name: string, ref: number | string) =>
      local().subscriptions.retryParked(name, ref),
    ),
    discardParked: procedures.define('subscriptions.discard-parked', (name: string, ref: number | string) =>
      local().subscriptions.discardParked(name, ref),
    ),
    metrics: procedures.define(REPORTS.metrics, () => local().metrics.registry.getMetricsAsJSON()),
    health: procedures.define(REPORTS.health, async () => local().store.health?.()),
    stop: procedures.define('storage.stop', () => local().close()),
  };
}

/** The subscriptions as the HTTP thread sees them: they run elsewhere, and start and stop with it. */
export function remoteSubscriptions(control: StorageControl, names: readonly string[], replayable: readonly string[]): Subscriptions {
  return {
    start() {},
    async stop() {},
    status: () => control.status(),
    caughtUp: (timeoutMs) => control.caughtUp(timeoutMs),
    replay: (name) => control.replay(name),
    retryParked: (name, position) => control.retryParked(name, position),
    discardParked: (name, ref) => control.discardParked(name, ref),
    names: () => [...names],
    replayable: () => [...replayable],
  };
}
