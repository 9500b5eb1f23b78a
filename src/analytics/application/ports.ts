/**
 * The ports the analytics context needs from the rest of Intake, declared in its own words. The
 * composition root plugs ingestion's batch use case and the applications' key check into them.
 */

/** The application a write key belongs to, or undefined for a key nobody issued (or one revoked). */
export type ResolveWriteKey = (writeKey: string) => Promise<{ appId: string; keyId: string } | undefined>;

/** Facts about the request, kept in each stored event's metadata. */
export interface RequestFacts {
  readonly ip?: string;
  readonly userAgent?: string;
  readonly correlationId?: string;
  readonly keyId?: string;
}

export interface EventToIngest {
  readonly command: {
    readonly partnerId: string;
    readonly eventType: string;
    readonly payload: object;
    readonly channel: 'analytics_api';
    readonly request?: RequestFacts;
    /** The message's `receivedAt`, which the stored item's arrival time repeats. */
    readonly receivedAt: Date;
  };
  /** Idempotency key: a second event with it within the window is a duplicate of the first. */
  readonly messageId?: string;
}

export type IngestReceipt =
  | { readonly index: number; readonly status: 'accepted'; readonly eventId: string }
  | { readonly index: number; readonly status: 'duplicate'; readonly eventId: string }
  | {
      readonly index: number;
      readonly status: 'rejected';
      /** Why ingestion refused it: `routing.rules-too-costly` when the application's rules would cost too much. */
      readonly code: string;
      readonly reason: string;
      readonly errors: readonly { path: string; message: string }[];
    };

/** Ingestion's batch use case: stores the events in one transaction, durable when it resolves. */
export type IngestEvents = (events: readonly EventToIngest[]) => Promise<readonly IngestReceipt[]>;
