import { ConflictError } from '../../shared/errors.js';
import {
  dataStreamId,
  type Channel,
  type DataIngested,
  type DataReceived,
  type IngestRouting,
  type ItemMetadata,
} from '../../shared/contracts/data-events.js';
import {
  parseEventType,
  parsePartnerId,
  parsePayload,
  timestampOf,
  type EventType,
  type PartnerId,
  type Payload,
  type Timestamp,
} from './values.js';

/** Facts about the request that carried an item: kept with the item, never used to decide. */
export interface RequestContext {
  readonly ip?: string;
  readonly userAgent?: string;
  readonly correlationId?: string;
  readonly keyId?: string;
}

export interface IngestDataCommand {
  readonly partnerId: unknown;
  readonly eventType?: unknown;
  readonly payload: unknown;
  readonly channel: Channel;
  readonly request?: RequestContext;
  /** When the request arrived, where the caller already stamped it (a tracking message's `receivedAt`): one instant for both. */
  readonly receivedAt?: Date;
}

export interface IngestedItem {
  readonly id: string;
  readonly partnerId: PartnerId;
  readonly eventType: EventType;
  readonly payload: Payload;
  readonly receivedAt: Timestamp;
  readonly metadata: ItemMetadata;
}

export type { Channel, DataIngested, DataReceived, ItemMetadata };

export type IngestedDataEvent = DataReceived | DataIngested;

export type IngestedDataState = { readonly status: 'absent' } | { readonly status: 'ingested'; readonly item: IngestedItem };

export const initialState: IngestedDataState = { status: 'absent' };

export { dataStreamId };

/** The factory: builds a valid item from a command, or throws a ValidationError naming the field. */
export function itemFromCommand(command: IngestDataCommand, id: string, now: Date): IngestedItem {
  const at = timestampOf(command.receivedAt ?? now);
  return {
    id,
    partnerId: parsePartnerId(command.partnerId),
    eventType: parseEventType(command.eventType),
    payload: parsePayload(command.payload),
    receivedAt: at,
    metadata: {
      channel: command.channel,
      received_at: at,
      ip: command.request?.ip ?? null,
      user_agent: command.request?.userAgent ?? null,
      correlation_id: command.request?.correlationId ?? null,
      key_id: command.request?.keyId ?? null,
    },
  };
}

export function decideIngest(item: IngestedItem, state: IngestedDataState, routing?: IngestRouting): IngestedDataEvent[] {
  if (state.status !== 'absent') throw new ConflictError('ingestion.already-ingested', `item ${item.id} was already ingested`);
  return [
    {
      type: 'DataReceived',
      data: { item_id: item.id, partner_id: item.partnerId, channel: item.metadata.channel, received_at: item.receivedAt },
    },
    {
      type: 'DataIngested',
      data: {
        item_id: item.id,
        partner_id: item.partnerId,
        event_type: item.eventType,
        payload: item.payload,
        received_at: item.receivedAt,
        metadata: item.metadata,
        ...(routing ? { routing } : {}),
      },
    },
  ];
}

export function evolve(state: IngestedDataState, event: IngestedDataEvent): IngestedDataState {
  switch (event.type) {
    case 'DataReceived':
      return state;
    case 'DataIngested':
      return { status: 'ingested', item: itemFromIngested(event.data) };
  }
}

export function itemFromIngested(data: DataIngested['data']): IngestedItem {
  return {
    id: data.item_id,
    partnerId: data.partner_id as PartnerId,
    eventType: data.event_type as EventType,
    payload: data.payload as Payload,
    receivedAt: data.received_at as Timestamp,
    metadata: data.metadata,
  };
}
