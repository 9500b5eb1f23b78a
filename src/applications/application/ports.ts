import type { Page, PageRequest } from '../../shared/pagination.js';

export interface ApplicationView {
  readonly appId: string;
  readonly name: string;
  readonly createdAt: string;
}

export interface KeyView {
  readonly keyId: string;
  readonly appId: string;
  readonly name: string | null;
  readonly issuedAt: string;
  readonly revokedAt: string | null;
}

export interface KeyRecord extends KeyView {
  readonly secretDigest: Buffer;
}

/** The applications context's own tables. */
export interface ApplicationDirectory {
  get(appId: string): Promise<ApplicationView | undefined>;
  list(page: PageRequest): Promise<Page<ApplicationView>>;
  /** An application's keys, oldest first (then by id). */
  keysOf(appId: string, page: PageRequest): Promise<Page<KeyView>>;
  key(keyId: string): Promise<KeyRecord | undefined>;
}
