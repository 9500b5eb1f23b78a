import type { JsonObject } from '../../shared/events.js';

/** What a step answers: expected failures are outcomes, not exceptions. */
export type StepOutcome = { readonly status: 'ok'; readonly output: JsonObject } | { readonly status: 'failed'; readonly reason: string };

export interface ItemFacts {
  readonly itemId: string;
  readonly partnerId: string;
  readonly eventType: string;
}

/** A named processing step: takes the payload as the previous step left it, returns the next one. */
export interface Processor {
  readonly name: string;
  run(input: JsonObject, item: ItemFacts): StepOutcome;
}

/** How a pipeline step is configured over the API and stored in events. */
export interface StepConfig {
  readonly processor: string;
  readonly fields?: readonly string[];
}

export const ok = (output: JsonObject): StepOutcome => ({ status: 'ok', output });
export const failed = (reason: string): StepOutcome => ({ status: 'failed', reason });
