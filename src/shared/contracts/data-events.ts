import type { JsonObject } from '../events.js';

/**
 * The published language of the data pipeline: the events other contexts (and other services,
 * over NATS) may consume. Their shapes are documented in docs/events.md; a change that is not
 * backwards compatible gets a new `schema_version` in the event metadata.
 */
export type Channel = 'partner_api' | 'application_api' | 'messages' | 'import' | 'analytics_api';

export interface ItemMetadata extends JsonObject {
  channel: Channel;
  received_at: string;
  ip: string | null;
  user_agent: string | null;
  correlation_id: string | null;
  key_id: string | null;
}

/** The item itself, carried by every event a downstream step needs it from (event-carried state). */
export interface ItemSnapshot {
  item_id: string;
  partner_id: string;
  event_type: string;
  payload: JsonObject;
  received_at: string;
  metadata: ItemMetadata;
}

export interface DataReceived {
  readonly type: 'DataReceived';
  readonly data: { item_id: string; partner_id: string; channel: Channel; received_at: string };
}

/** The routing decision taken when the item arrived (rules are evaluated on the ingest path). */
export interface IngestRouting {
  rules_evaluated: number;
  matched_rule_ids: string[];
  /**
   * True when routing was not running as the item arrived (`INTAKE_DISABLE=routing`): no rule was
   * evaluated, and routing evaluates the rules in force when it reaches the item.
   */
  deferred?: true;
}

export interface DataIngested {
  readonly type: 'DataIngested';
  readonly data: ItemSnapshot & { routing?: IngestRouting };
}

export interface Violation {
  path: string;
  rule: string;
  message: string;
}

export interface DataValidated {
  readonly type: 'DataValidated';
  readonly data: ItemSnapshot & { schema_version: number | null; schema_partner_id?: SchemaScope; validated_at: string };
}

/**
 * The source whose own schema judged the item, or null for the schema of every source (or none):
 * each numbers its versions apart. Verdicts written before December 2026 lack it.
 */
export type SchemaScope = string | null;

export interface DataInvalid {
  readonly type: 'DataInvalid';
  readonly data: {
    item_id: string;
    partner_id: string;
    event_type: string;
    schema_version: number | null;
    schema_partner_id?: SchemaScope;
    errors: Violation[];
    validated_at: string;
  };
}

export interface ProcessingStep {
  name: string;
  status: 'ok' | 'failed' | 'skipped';
  duration_ms: number;
  error?: string;
}

export interface DataProcessed {
  readonly type: 'DataProcessed';
  readonly data: {
    item_id: string;
    partner_id: string;
    event_type: string;
    result: JsonObject;
    steps: ProcessingStep[];
    processed_at: string;
  };
}

export interface DataProcessingFailed {
  readonly type: 'DataProcessingFailed';
  readonly data: {
    item_id: string;
    partner_id: string;
    event_type: string;
    reason: string;
    failed_step: string;
    steps: ProcessingStep[];
    processed_at: string;
  };
}

export type DataEvent = DataReceived | DataIngested | DataValidated | DataInvalid | DataProcessed | DataProcessingFailed;

export const DATA_EVENT_TYPES = [
  'DataReceived',
  'DataIngested',
  'DataValidated',
  'DataInvalid',
  'DataProcessed',
  'DataProcessingFailed',
] as const;

export const dataStreamId = (itemId: string) => `data-${itemId}`;

/** The item whose stream this is, or undefined for another stream: read without parsing the event's data. */
export const itemIdOfStream = (streamId: string): string | undefined =>
  streamId.startsWith('data-') && streamId.length > 5 ? streamId.slice(5) : undefined;
