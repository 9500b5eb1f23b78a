import type { Clock } from '../../shared/clock.js';
import { ValidationError } from '../../shared/errors.js';
import { SLICE_MS, threadSlice } from '../../shared/yielding.js';
import {
  checkBatchContext,
  checkBatchCount,
  parseMessage,
  type AnalyticsMessage,
  type Arrival,
  type MessageType,
} from '../domain/message.js';
import type { EventToIngest, IngestEvents, RequestFacts } from './ports.js';

export interface AcceptMessagesDeps {
  readonly ingest: IngestEvents;
  readonly clock: Clock;
  /** How long checking a batch's messages holds the thread before others get it (tests pause at every message). */
  readonly sliceMs?: number;
}

export interface MessagesCommand {
  readonly appId: string;
  readonly messages: readonly unknown[];
  /** Messages the edge refused already (the JSON limits), by index: each is rejected with its own problem. */
  readonly refused?: ReadonlyMap<number, ValidationError>;
  /** The type the endpoint implies (`/v1/track`), for messages that leave `type` out. */
  readonly route?: MessageType;
  /** The batch's `sentAt` and `context`, for messages that carry none. */
  readonly sentAt?: unknown;
  readonly context?: unknown;
  /** `/v1/import`: timestamps are historical and taken as sent (see Arrival). */
  readonly historical?: boolean;
  readonly request: RequestFacts;
}

export type MessageReceipt =
  | { readonly index: number; readonly status: 'accepted' | 'duplicate'; readonly eventId: string; readonly messageId?: string }
  | {
      readonly index: number;
      readonly status: 'rejected';
      readonly code: string;
      readonly reason: string;
      readonly errors: readonly { path: string; message: string }[];
      readonly messageId?: string;
    };

/**
 * Turns tracking-API messages into events of the key's application, through ingestion's batch use
 * case: one transaction, a receipt per message, a bad message rejected alone, and each `messageId`
 * stored at most once within the idempotency window.
 */
export const acceptMessages =
  ({ ingest, clock, sliceMs = SLICE_MS }: AcceptMessagesDeps) =>
  async (command: MessagesCommand): Promise<MessageReceipt[]> => {
    const arrival: Arrival = {
      receivedAt: clock.now(),
      ip: command.request.ip,
      sentAt: command.sentAt,
      context: command.context,
      historical: command.historical,
    };
    // The whole request is refused (413) when it carries too many messages, or the context's copies would store too much.
    checkBatchCount(command.messages.length);
    const contextBytes = checkBatchContext(command.context, command.messages.length);
    const receipts: MessageReceipt[] = [];
    const toIngest: Array<{ index: number; message: AnalyticsMessage }> = [];
    const slice = threadSlice(sliceMs);
    for (const [index, raw] of command.messages.entries()) {
      if (slice.spent) await slice.pause();
      try {
        const refused = command.refused?.get(index);
        if (refused) throw refused;
        toIngest.push({ index, message: parseMessage(raw, arrival, command.route, contextBytes) });
      } catch (error) {
        if (!(error instanceof ValidationError)) throw error;
        receipts.push({
          index,
          status: 'rejected',
          code: error.code,
          reason: error.message,
          errors: error.violations,
          ...messageIdOf(raw),
        });
      }
    }
    if (toIngest.length > 0) {
      const events = toIngest.map(({ message }): EventToIngest => ({
        command: {
          partnerId: command.appId,
          eventType: message.eventType,
          payload: message.payload,
          channel: 'analytics_api',
          request: command.request,
          receivedAt: arrival.receivedAt,
        },
        ...(message.messageId !== undefined ? { messageId: message.messageId } : {}),
      }));
      const stored = await ingest(events);
      for (const receipt of stored) {
        const entry = toIngest[receipt.index];
        if (!entry) continue;
        const messageId = entry.message.messageId !== undefined ? { messageId: entry.message.messageId } : {};
        receipts.push(
          receipt.status === 'rejected'
            ? {
                index: entry.index,
                status: 'rejected',
                code: receipt.code,
                reason: receipt.reason,
                errors: receipt.errors,
                ...messageId,
              }
            : { index: entry.index, status: receipt.status, eventId: receipt.eventId, ...messageId },
        );
      }
    }
    return receipts.sort((a, b) => a.index - b.index);
  };

/** A refused message's id as its receipt gives it: text, or a number taken as text, as an accepted one's. */
function messageIdOf(raw: unknown): { messageId?: string } {
  const id = typeof raw === 'object' && raw !== null ? (raw as { messageId?: unknown }).messageId : undefined;
  if (typeof id === 'number' && Number.isFinite(id)) return { messageId: String(id) };
  return typeof id === 'string' ? { messageId: id } : {};
}
