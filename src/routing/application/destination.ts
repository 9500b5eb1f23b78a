import type { AttemptOutcome } from '../domain/delivery.js';

/**
 * The port every destination adapter implements. Expected failures are outcomes, not exceptions:
 * the delivery worker decides on retries, dead letters and disabling from the outcome alone.
 */
export interface DeliveryRequest {
  /** Stable across attempts: receivers deduplicate on it (`webhook-id` for webhooks). */
  readonly deliveryId: string;
  readonly attempt: number;
  /** The JSON document delivered, already serialised (signed as is for webhooks). */
  readonly body: string;
  readonly eventId: string;
  readonly appId: string;
  readonly eventType: string;
}

/** Expected failures are outcomes, decided on by the domain's retry rules (see decideAttempt). */
export type DeliveryOutcome = AttemptOutcome;

export interface WebhookTarget {
  readonly url: string;
  /** `whsec_<base64 key>`, per the Standard Webhooks specification. */
  readonly signingSecret: string;
  /** The secret a rotation replaced, while it is honoured: each message is signed with both. */
  readonly previousSigningSecret?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface WebhookSender {
  send(target: WebhookTarget, request: DeliveryRequest): Promise<DeliveryOutcome>;
  close(): Promise<void>;
}

export type QueueTarget =
  | { readonly broker: 'nats'; readonly url?: string; readonly connection?: string; readonly subject: string }
  | {
      readonly broker: 'rabbitmq';
      readonly url?: string;
      readonly connection?: string;
      readonly exchange: string;
      readonly routing_key: string;
    }
  | { readonly broker: 'redis'; readonly url?: string; readonly connection?: string; readonly stream: string };

export interface QueuePublisher {
  /** Resolves `delivered` only once the broker confirmed the message. */
  publish(target: QueueTarget, request: DeliveryRequest): Promise<DeliveryOutcome>;
  close(): Promise<void>;
}
