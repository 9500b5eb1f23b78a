import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Clock } from '../../shared/clock.js';
import { NotFoundError, UnavailableError } from '../../shared/errors.js';
import { ConcurrencyError, type EventStore } from '../../shared/event-store/event-store.js';
import { oneAtATime } from '../../shared/one-at-a-time.js';
import type { IdGenerator } from '../../shared/ids.js';
import type { PageRequest } from '../../shared/pagination.js';
import { digestOf, secretMatches } from '../../shared/secrets.js';
import {
  applicationStreamId,
  decideCreate,
  decideIssueKey,
  decideRename,
  decideRevokeKey,
  evolveApplication,
  noApplication,
  parseAppId,
  type ApplicationEvent,
  type ApplicationState,
} from '../domain/application.js';
import { formatWriteKey, parseWriteKey } from '../domain/write-key.js';
import type { ApplicationDirectory, ApplicationView, KeyView } from './ports.js';

export interface ApplicationDeps {
  readonly store: EventStore;
  readonly clock: Clock;
  readonly newId: IdGenerator;
  readonly directory: ApplicationDirectory;
}

async function load(store: EventStore, appId: string): Promise<{ state: ApplicationState; version: number }> {
  const events = await store.readStream(applicationStreamId(appId));
  return { state: events.map((e) => e as unknown as ApplicationEvent).reduce(evolveApplication, noApplication), version: events.length };
}

/**
 * Loads the application, decides and appends; when another change to it committed in between (two
 * keys issued at once, a rename beside a revoke), decides again on the new state, as the second of
 * two requests one after the other would: independent changes both succeed, a repeated one gets the
 * answer it would get then (an already revoked key, an existing id). Changes made through this
 * process wait for each other (`oneAtATime`), so only another process's can race one; a change still
 * beaten after MAX_DECISIONS rounds is the server's to retry later, never the caller's conflict.
 */
async function changeApplication<T extends ApplicationEvent>(
  store: EventStore,
  appId: string,
  decide: (state: ApplicationState) => T,
): Promise<T> {
  return oneChangeAtATime(appId, async () => {
    for (let attempt = 1; ; attempt++) {
      const { state, version } = await load(store, appId);
      const event = decide(state);
      try {
        await store.append({
          streamId: applicationStreamId(appId),
          events: [event],
          expectedVersion: version === 0 ? 'no_stream' : version,
        });
        return event;
      } catch (error) {
        if (!(error instanceof ConcurrencyError)) throw error;
        if (attempt >= MAX_DECISIONS) {
          throw new UnavailableError('applications.busy', `application ${appId} is being changed by other requests; retry shortly`, 1);
        }
        // Each round lets one of the processes racing through it win: a growing random wait spreads the others.
        await sleep(Math.random() * Math.min(2 ** attempt, 100));
      }
    }
  });
}

// Each round settles at least one of the racing processes.
const MAX_DECISIONS = 32;

/** Changes to one application made through this process, one after the other. */
const oneChangeAtATime = oneAtATime();

export const createApplication =
  ({ store, clock, newId }: ApplicationDeps) =>
  async (input: { name: unknown; appId?: unknown }): Promise<ApplicationView> => {
    const appId = input.appId === undefined || input.appId === null ? newId() : parseAppId(input.appId);
    const event = await changeApplication(store, appId, (state) => decideCreate(appId, input.name, state, clock.now()));
    return { appId, name: event.data.name, createdAt: event.data.created_at };
  };

export const renameApplication =
  ({ store, clock, directory }: ApplicationDeps) =>
  async (appId: string, name: unknown): Promise<ApplicationView> => {
    const event = await changeApplication(store, appId, (state) => decideRename(appId, name, state, clock.now()));
    const renamed = await directory.get(appId);
    if (!renamed) throw new NotFoundError('applications.not-found', `no application ${appId}`);
    return { ...renamed, name: event.data.name };
  };

/**
 * Makes sure a source exists before the admin writes as it: a partner or application seen for
 * the first time is created on the spot. Known ids are remembered, so the hot path reads nothing.
 */
export function ensureApplication({ store, clock, directory }: ApplicationDeps): (appId: string) => Promise<void> {
  const known = new Set<string>();
  return async (appId) => {
    if (known.has(appId)) return;
    if (!(await directory.get(appId))) {
      const event = decideCreate(appId, appId, noApplication, clock.now());
      try {
        await store.append({ streamId: applicationStreamId(appId), events: [event], expectedVersion: 'no_stream' });
      } catch (error) {
        // Another request created it first: that is all we wanted.
        if (!(error instanceof ConcurrencyError)) throw error;
      }
    }
    known.add(appId);
  };
}

export interface IssuedKey extends KeyView {
  /** The only time the secret is ever shown. */
  readonly key: string;
}

export const issueWriteKey =
  ({ store, clock }: ApplicationDeps) =>
  async (appId: string, name: string | null): Promise<IssuedKey> => {
    const keyId = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const digest = digestOf(secret).toString('hex');
    const event = await changeApplication(store, appId, (state) => decideIssueKey(appId, keyId, name, digest, state, clock.now()));
    return { keyId, appId, name, issuedAt: event.data.issued_at, revokedAt: null, key: formatWriteKey(keyId, secret) };
  };

export const revokeWriteKey =
  ({ store, clock }: ApplicationDeps) =>
  async (appId: string, keyId: string): Promise<void> => {
    await changeApplication(store, appId, (state) => decideRevokeKey(appId, keyId, state, clock.now()));
  };

export const getApplication = (directory: ApplicationDirectory) => async (appId: string) => {
  const app = await directory.get(appId);
  if (!app) throw new NotFoundError('applications.not-found', `no application ${appId}`);
  return app;
};

export const listKeys = (directory: ApplicationDirectory) => async (appId: string, page: PageRequest) => {
  await getApplication(directory)(appId);
  return directory.keysOf(appId, page);
};

/** The source a write key may write as, or undefined for an unknown, revoked or wrong key. */
export const verifyWriteKey =
  (directory: ApplicationDirectory) =>
  async (token: string): Promise<{ appId: string; keyId: string } | undefined> => {
    const parsed = parseWriteKey(token);
    if (!parsed) return undefined;
    const record = await directory.key(parsed.keyId);
    if (!record || record.revokedAt !== null || !secretMatches(parsed.secret, record.secretDigest)) return undefined;
    return { appId: record.appId, keyId: record.keyId };
  };
