import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import type { EventStore, InlineProjection } from './event-store/event-store.js';
import type { IdGenerator } from './ids.js';
import type { Procedures } from './procedures.js';
import type { MigrationSet } from './sqlite/migrate.js';
import type { Subscriber } from './subscriptions/subscriber.js';
import type { WriteKeyVerifier } from './http/auth.js';
import type { HttpContext } from './http/http-context.js';

/** What every bounded context is given by a composition root. */
export interface ModuleDeps {
  readonly store: EventStore;
  /** The context's own tables live here (and the event store's, in embedded mode). */
  readonly db: Kysely<object>;
  readonly clock: Clock;
  readonly newId: IdGenerator;
  readonly logger: Logger;
  /** Work that must run where the write connection lives (see shared/procedures.ts). */
  readonly procedures: Procedures;
  /**
   * Waits while the subscribers trail too far behind (shared/subscriptions/flow-control.ts). A context
   * that takes in outside data in a transaction calls it first; plain appends of `store` already wait.
   * Absent where nothing is held back (the distributed roles, `intake replay`). `source` is the
   * application or partner the data comes from, `weight` its number of events.
   */
  readonly admit?: (source?: string, weight?: number) => Promise<void>;
}

/** A context's storage, known before anything runs: its migrations, and the views that commit with their events. */
export interface ContextTables {
  readonly migrations: readonly MigrationSet[];
  /** Passed to the event store at construction, so they run inside the append transaction. */
  readonly inlineProjections?: readonly InlineProjection[];
}

/** A bounded context as a composition root sees it: its subscribers and its HTTP adapter. */
export interface ContextModule {
  readonly name: string;
  readonly subscribers?: readonly Subscriber[];
  readonly http?: readonly HttpContext[];
  /** Contributed to the HTTP edge by the context that knows write keys (applications). */
  readonly verifyWriteKey?: WriteKeyVerifier;
  /**
   * Checks the configuration against the stored data, where the writing connection is, before
   * anything starts: one that throws stops the service from starting, with its message.
   */
  verify?(): Promise<void>;
  /** Background work of its own (beyond subscribers), started and stopped with the process. */
  start?(): void;
  stop?(): Promise<void>;
  /** The same work held, with its connections kept, while the process may not write (a lost lock), and let go again. */
  pause?(): Promise<void>;
  resume?(): void;
}

/** Runs every module's verify step; if one fails, `release` closes what was opened for them first. */
export async function verifyModules(modules: readonly ContextModule[], release: () => Promise<void>): Promise<void> {
  try {
    for (const module of modules) await module.verify?.();
  } catch (error) {
    await release();
    throw error;
  }
}
