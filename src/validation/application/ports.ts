import type { Kysely } from 'kysely';
import type { Page, PageRequest } from '../../shared/pagination.js';
import type { Violation } from '../../shared/contracts/data-events.js';
import type { SchemaDocument, SchemaKey } from '../domain/schema-registry.js';

/** Turns a JSON Schema into a check; throws a ValidationError when the schema itself is invalid. */
export interface SchemaCompiler {
  compile(schema: SchemaDocument, cacheKey?: string): (payload: unknown) => Violation[];
}

/** Whether a schema being saved compiles: rejects with a ValidationError when it does not. */
export type SchemaCheck = (schema: SchemaDocument) => Promise<void>;

export interface StoredSchema {
  readonly eventType: string;
  readonly partnerId: string | null;
  readonly version: number;
  readonly schema: SchemaDocument;
  readonly registeredAt: string;
}

/** Validation's own record of every schema version, with the log position it took effect at. */
export interface SchemaCatalog {
  current(key: SchemaKey): Promise<StoredSchema | undefined>;
  /** The schemas in force, by event type then source (the schema for every source first). */
  list(page: PageRequest): Promise<Page<StoredSchema>>;
  /** The schema an item of this type and source ingested at `position` must satisfy, if any. */
  inForceAt(eventType: string, partnerId: string, position: number): Promise<StoredSchema | undefined>;
  /**
   * The same by time, for items that come from another service's log (distributed mode), whose
   * positions cannot be compared with this store's.
   */
  inForceAtTime(eventType: string, partnerId: string, at: string): Promise<StoredSchema | undefined>;
  /** Which of these event types have ever had a schema: items of the others need no lookup. */
  typesWithSchemas(eventTypes: readonly string[]): Promise<Set<string>>;
}

/** Verdicts already given: the same DataIngested delivered twice yields one verdict. */
export interface VerdictLog {
  /** Records the verdicts of items that had none; answers the ids it recorded. */
  recordNew(verdicts: ReadonlyArray<{ itemId: string; verdict: 'valid' | 'invalid'; position: number }>): Promise<Set<string>>;
}

export type CatalogFor = (db: Kysely<object>) => SchemaCatalog;
export type VerdictLogFor = (db: Kysely<object>) => VerdictLog;
