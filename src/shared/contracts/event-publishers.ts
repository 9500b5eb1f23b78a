import type { DATA_EVENT_TYPES } from './data-events.js';
import { ROUTING_EVENT_TYPES } from './routing-events.js';

type DataEventType = (typeof DATA_EVENT_TYPES)[number];

/** Which context writes each stage of an item. */
const DATA_EVENT_PUBLISHERS: Readonly<Record<DataEventType, string>> = {
  DataReceived: 'ingestion',
  DataIngested: 'ingestion',
  DataValidated: 'validation',
  DataInvalid: 'validation',
  DataProcessed: 'processing',
  DataProcessingFailed: 'processing',
};

/**
 * The context that writes each event type other contexts read (docs/events.md). An event travels on
 * the bus under the role running its context, so a consumer can ask for exactly `<prefix>.<role>.<type>`;
 * a broker that takes one filter per consumer is then asked for each role's messages apart.
 */
const PUBLISHERS: ReadonlyMap<string, string> = new Map<string, string>([
  ...Object.entries(DATA_EVENT_PUBLISHERS),
  ...ROUTING_EVENT_TYPES.map((type) => [type, 'routing'] as const),
  ...['RoutingRuleCreated', 'RoutingRuleUpdated', 'RoutingRuleToggled', 'RoutingRuleDeleted', 'WebhookSecretRotated'].map(
    (type) => [type, 'routing'] as const,
  ),
  ...['SchemaRegistered', 'SchemaRemoved'].map((type) => [type, 'validation'] as const),
  ...['PipelineConfigured', 'PipelineReset'].map((type) => [type, 'processing'] as const),
  ...['ApplicationCreated', 'ApplicationRenamed', 'WriteKeyIssued', 'WriteKeyRevoked'].map((type) => [type, 'applications'] as const),
  ['TrackingEventRecorded', 'tracking'],
  ['ConversionRecorded', 'attribution'],
]);

/** Every event type whose publisher is known, with that publisher. */
export function publishedTypes(): ReadonlyMap<string, string> {
  return PUBLISHERS;
}

/** The context that writes events of this type, if it is one that crosses contexts. */
export function publisherOf(eventType: string): string | undefined {
  return PUBLISHERS.get(eventType);
}
