import type { ContextModule, ContextTables, ModuleDeps } from '../shared/context-module.js';
import { DEFAULT_PAGE_SIZE } from '../shared/pagination.js';
import {
  createApplication,
  ensureApplication,
  getApplication,
  issueWriteKey,
  listKeys,
  renameApplication,
  revokeWriteKey,
  verifyWriteKey,
  type ApplicationDeps,
} from './application/manage-applications.js';
import { applicationHttp } from './adapters/http/application-routes.js';
import type { ApplicationView } from './application/ports.js';
import type { Subscriber } from '../shared/subscriptions/subscriber.js';
import { APPLICATION_EVENT_TYPES } from './domain/application.js';
import { applicationMigrations } from './adapters/sql/migrations.js';
import { applicationsProjection, sqlApplicationDirectory } from './adapters/sql/sql-application-directory.js';
import { setTimeout as sleep } from 'node:timers/promises';

export const applicationsTables: ContextTables = { migrations: [applicationMigrations], inlineProjections: [applicationsProjection] };

export interface ApplicationsModule extends ContextModule {
  /** For the HTTP edge: who a write key writes as. */
  readonly verifyWriteKey: (token: string) => Promise<{ appId: string; keyId: string } | undefined>;
  /** For ingestion: creates a source the admin writes as for the first time. */
  readonly ensureApplication: (appId: string) => Promise<void>;
  /** For routing: rules may only be written for existing applications. */
  readonly find: (appId: string) => Promise<ApplicationView | undefined>;
}

export function applicationsModule({ store, db, clock, newId }: ModuleDeps): ApplicationsModule {
  const directory = sqlApplicationDirectory(db);
  const deps: ApplicationDeps = { store, clock, newId, directory };
  return {
    name: 'applications',
    verifyWriteKey: verifyWriteKey(directory),
    ensureApplication: ensureApplication(deps),
    find: (appId) => directory.get(appId),
    http: [
      applicationHttp({
        create: createApplication(deps),
        get: getApplication(directory),
        rename: renameApplication(deps),
        list: (page) => directory.list({ limit: page.limit ?? DEFAULT_PAGE_SIZE, cursor: page.cursor }),
        issueKey: issueWriteKey(deps),
        listKeys: listKeys(directory),
        revokeKey: revokeWriteKey(deps),
      }),
    ],
  };
}

/** Applications for another service (routing, in distributed mode): a local copy kept from their events. */
/**
 * How long a replica waits for an application it does not know yet before it answers that there is
 * none: the application's event reaches it through the broker, usually within milliseconds.
 */
export const REPLICA_ARRIVAL_WAIT_MS = 5000;
const REPLICA_POLL_MS = 50;

export function applicationsReplica(
  { db }: Pick<ModuleDeps, 'db'>,
  arrivalWaitMs = REPLICA_ARRIVAL_WAIT_MS,
): { find: ApplicationsModule['find']; exists: (appId: string) => Promise<boolean>; subscriber: Subscriber } {
  const directory = sqlApplicationDirectory(db);
  return {
    find: (appId) => directory.get(appId),
    // A rule made right after its application, through another role, came before the application did.
    async exists(appId) {
      const deadline = performance.now() + arrivalWaitMs;
      for (;;) {
        if ((await directory.get(appId)) !== undefined) return true;
        if (performance.now() >= deadline) return false;
        await sleep(REPLICA_POLL_MS);
      }
    },
    subscriber: {
      name: 'applications-replica',
      handles: APPLICATION_EVENT_TYPES,
      from: 'applications',
      handle: (events, tx) => applicationsProjection.apply(tx.db, events),
    },
  };
}
