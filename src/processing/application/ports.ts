import type { Kysely } from 'kysely';
import type { Page, PageRequest } from '../../shared/pagination.js';
import type { StepConfig } from '../domain/processor.js';

export interface PipelineView {
  readonly eventType: string;
  readonly steps: readonly StepConfig[];
  /** null for the default pipeline (no configuration stored). */
  readonly configuredAt: string | null;
}

/** A pipeline as configured from `configuredAt` on; `steps` null when the type went back to the default. */
export interface PipelineVersion {
  readonly configuredAt: string;
  readonly steps: readonly StepConfig[] | null;
}

/** Processing's own table of configured pipelines. */
export interface PipelineCatalog {
  get(eventType: string): Promise<PipelineView>;
  /** Every configuration of these event types, oldest first; a type never configured has none. */
  versions(eventTypes: readonly string[]): Promise<Map<string, PipelineVersion[]>>;
  /** The configured pipelines by event type. */
  list(page: PageRequest): Promise<Page<PipelineView>>;
}

/** Outcomes already recorded: the same DataValidated delivered twice is processed once. */
export interface OutcomeLog {
  /** Records the outcomes of items that had none; answers the ids it recorded. */
  recordNew(outcomes: ReadonlyArray<{ itemId: string; outcome: 'processed' | 'failed'; position: number }>): Promise<Set<string>>;
}

export type PipelineCatalogFor = (db: Kysely<object>) => PipelineCatalog;
export type OutcomeLogFor = (db: Kysely<object>) => OutcomeLog;
