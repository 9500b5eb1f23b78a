import { randomBytes } from 'node:crypto';
import { makeRoom } from '../../shared/bounded-map.js';
import type { Clock } from '../../shared/clock.js';
import { NotFoundError } from '../../shared/errors.js';
import { ConcurrencyError, type EventStore } from '../../shared/event-store/event-store.js';
import { retriedChanges } from '../../shared/event-store/retried-changes.js';
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

/** Changes to one application: decided again on the new state when another committed first (see retriedChanges). */
const changes = retriedChanges('applications.busy', (streamId) => `application ${streamId.slice('application-'.length)}`);

function changeApplication<T extends ApplicationEvent>(
  store: EventStore,
  appId: string,
  decide: (state: ApplicationState) => T,
): Promise<T> {
  const streamId = applicationStreamId(appId);
  return changes(store, streamId, async () => {
    const { state, version } = await load(store, appId);
    const event = decide(state);
    return { append: { streamId, events: [event], expectedVersion: version === 0 ? 'no_stream' : version }, result: event };
  });
}

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
/** Sources remembered as existing at most: each partner an admin ever wrote as stayed in memory for good. */
const KNOWN_APPLICATIONS = 100_000;

export function ensureApplication({ store, clock, directory }: ApplicationDeps): (appId: string) => Promise<void> {
  const known = new Set<string>();
  return async (appId) => {
    if (known.has(appId)) return;
    if (!(await directory.get(appId))) {
      const event = decideCreate(appId, appId, noApplication, clock.now());
      try {
        // Made by its first data: flow control counts it with that data's source.
        await store.append({ streamId: applicationStreamId(appId), events: [event], expectedVersion: 'no_stream', source: appId });
      } catch (error) {
        // Another request created it first: that is all we wanted.
        if (!(error instanceof ConcurrencyError)) throw error;
      }
    }
    makeRoom(known, KNOWN_APPLICATIONS);
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
