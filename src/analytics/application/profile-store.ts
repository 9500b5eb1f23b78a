import type { Kysely } from 'kysely';
import type { JsonValue } from '../../shared/events.js';
import type { ProfileFact } from '../domain/profile.js';

/** The profiles view as its subscriber writes it, inside the subscriber's transaction. */
export interface ProfileLedger {
  /** Keeps a fact; a trait only replaces an earlier setting of the same trait. Idempotent. */
  record(appId: string, fact: ProfileFact): Promise<void>;
  clear(): Promise<void>;
}

export type ProfileLedgerFor = (db: Kysely<object>) => ProfileLedger;

export interface TraitSetting {
  readonly trait: string;
  readonly value: JsonValue;
  readonly setAt: string;
  readonly itemId: string;
}

/** The profiles view as queries read it. */
export interface ProfileViews {
  /** Traits set on these users (or groups), every setting of each. */
  traits(appId: string, type: 'user' | 'group', ids: readonly string[]): Promise<Array<TraitSetting & { subject: string }>>;
  linkedIds(appId: string, userId: string): Promise<Array<{ otherId: string; link: 'anonymous' | 'alias' }>>;
  groups(appId: string, userId: readonly string[]): Promise<Array<{ groupId: string; since: string }>>;
}
