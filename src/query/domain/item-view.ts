import type { DataEvent, ProcessingStep, Violation } from '../../shared/contracts/data-events.js';
import type { JsonObject } from '../../shared/events.js';

export type PipelineStatus = 'received' | 'ingested' | 'validated' | 'invalid' | 'processed' | 'failed';

/**
 * Status by stage, not by arrival: a later stage never moves an item back, so the view is the same
 * whatever order a broker delivers the events of different services in.
 */
const STAGE: Record<PipelineStatus, number> = { received: 0, ingested: 1, validated: 2, invalid: 2, processed: 3, failed: 3 };

export interface ItemView {
  readonly id: string;
  readonly partnerId: string;
  readonly eventType: string;
  readonly payload: JsonObject | null;
  readonly receivedAt: string;
  readonly status: PipelineStatus;
  readonly validation: { schemaVersion: number | null; errors: Violation[] } | null;
  readonly processing: { result: JsonObject | null; steps: ProcessingStep[]; reason: string | null; failedStep: string | null } | null;
  readonly updatedAt: string;
}

export interface HistoryEntry {
  readonly eventId: string;
  readonly type: string;
  readonly version: number;
  readonly recordedAt: string;
  readonly data: object;
}

export const QUERY_EVENT_TYPES: readonly DataEvent['type'][] = [
  'DataReceived',
  'DataIngested',
  'DataValidated',
  'DataInvalid',
  'DataProcessed',
  'DataProcessingFailed',
];

/** Folds one event of an item's stream into its view; `undefined` is the item before its first event. */
export function evolveItemView(view: ItemView | undefined, event: DataEvent, recordedAt: string): ItemView {
  const base: ItemView = view ?? {
    id: event.data.item_id,
    partnerId: event.data.partner_id,
    eventType: 'event_type' in event.data ? event.data.event_type : 'data',
    payload: null,
    receivedAt: 'received_at' in event.data ? event.data.received_at : recordedAt,
    status: 'received',
    validation: null,
    processing: null,
    updatedAt: recordedAt,
  };
  const advance = (status: PipelineStatus): PipelineStatus => (STAGE[status] >= STAGE[base.status] ? status : base.status);
  const touched = { updatedAt: recordedAt > base.updatedAt ? recordedAt : base.updatedAt };

  switch (event.type) {
    case 'DataReceived':
      return { ...base, ...touched, receivedAt: event.data.received_at };
    case 'DataIngested':
      return {
        ...base,
        ...touched,
        eventType: event.data.event_type,
        payload: event.data.payload,
        receivedAt: event.data.received_at,
        status: advance('ingested'),
      };
    case 'DataValidated':
      return { ...base, ...touched, status: advance('validated'), validation: { schemaVersion: event.data.schema_version, errors: [] } };
    case 'DataInvalid':
      return {
        ...base,
        ...touched,
        status: advance('invalid'),
        validation: { schemaVersion: event.data.schema_version, errors: event.data.errors },
      };
    case 'DataProcessed':
      return {
        ...base,
        ...touched,
        status: advance('processed'),
        processing: { result: event.data.result, steps: event.data.steps, reason: null, failedStep: null },
      };
    case 'DataProcessingFailed':
      return {
        ...base,
        ...touched,
        status: advance('failed'),
        processing: { result: null, steps: event.data.steps, reason: event.data.reason, failedStep: event.data.failed_step },
      };
  }
}

/** Rebuilds an item from its history, as it stood at `asOf` (inclusive) when given. */
export function foldHistory(history: readonly HistoryEntry[], asOf?: string): ItemView | undefined {
  return history
    .filter((entry) => asOf === undefined || entry.recordedAt <= asOf)
    .reduce<ItemView | undefined>(
      (view, entry) => evolveItemView(view, { type: entry.type, data: entry.data } as DataEvent, entry.recordedAt),
      undefined,
    );
}
