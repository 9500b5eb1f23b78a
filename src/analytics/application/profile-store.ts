import type { Kysely } from 'kysely';
import type { JsonValue } from '../../shared/events.js';
import type { ProfileFact } from '../domain/profile.js';

/** The profiles view as its subscriber writes it, inside the subscriber's transaction. */
export interface ProfileLedger {
  /** Keeps the facts of an application; a trait only replaces an earlier setting of the same trait. Idempotent. */
  record(appId: string, facts: readonly ProfileFact[]): Promise<void>;
  clear(): Promise<void>;
}

export type ProfileLedgerFor = (db: Kysely<object>) => ProfileLedger;

/** A trait's setting without its value, with the bytes of its stored JSON. */
export interface TraitSize {
  readonly subject: string;
  readonly trait: string;
  readonly setAt: string;
  readonly itemId: string;
  readonly bytes: number;
}

/** The profiles view as queries read it. */
export interface ProfileViews {
  /** The first `limit` settings of these users' (or groups') traits after the trait `after`, in order of trait name. */
  traitSizes(appId: string, type: 'user' | 'group', ids: readonly string[], after: string | undefined, limit: number): Promise<TraitSize[]>;
  /** The values of these settings. */
  traitValues(
    appId: string,
    type: 'user' | 'group',
    settings: ReadonlyArray<{ subject: string; trait: string }>,
  ): Promise<Array<{ subject: string; trait: string; value: JsonValue }>>;
  /** The first `limit` ids these users have of one link, each once and in order, with their bytes. */
  linkedIds(
    appId: string,
    userIds: readonly string[],
    link: 'anonymous' | 'alias',
    limit: number,
  ): Promise<Array<{ otherId: string; bytes: number }>>;
  /** The first `limit` groups of these users, in order, each with its earliest membership. */
  groups(appId: string, userIds: readonly string[], limit: number): Promise<Array<{ groupId: string; since: string }>>;
}
