import type { Clock } from '../../shared/clock.js';
import { dataStreamId, type DataValidated } from '../../shared/contracts/data-events.js';
import { causedBy } from '../../shared/events.js';
import type { Subscriber } from '../../shared/subscriptions/subscriber.js';
import { buildPipeline, runPipeline, type ProcessorRegistry } from '../domain/pipeline.js';
import { failed, type Processor, type StepConfig } from '../domain/processor.js';
import { ValidationError } from '../../shared/errors.js';
import type { OutcomeLogFor, PipelineCatalogFor } from './ports.js';

export interface ProcessingSubscriberDeps {
  readonly clock: Clock;
  /** A monotonic clock in milliseconds, for step durations. */
  readonly elapsedMs: () => number;
  readonly pipelines: PipelineCatalogFor;
  readonly outcomes: OutcomeLogFor;
  /** The processors pipelines may name; the built-in ones by default. */
  readonly processors?: ProcessorRegistry;
}

/** Runs each validated item through its event type's pipeline and records the outcome on the item's stream. */
export function processingSubscriber({ clock, elapsedMs, pipelines, outcomes, processors }: ProcessingSubscriberDeps): Subscriber {
  const built = new Map<string, Processor[]>();
  // Pipelines are built once per configuration, not once per item.
  const stepsFor = (config: readonly StepConfig[]) => {
    const key = JSON.stringify(config);
    let steps = built.get(key);
    if (!steps) built.set(key, (steps = buildOrRefuse(config, processors)));
    return steps;
  };

  return {
    name: 'processing',
    handles: ['DataValidated'],
    async handle(events, tx) {
      const catalog = pipelines(tx.db);
      const configs = new Map<string, readonly StepConfig[]>();
      const done = [];
      for (const event of events) {
        const item = (event as unknown as DataValidated).data;
        let steps = configs.get(item.event_type);
        if (!steps) configs.set(item.event_type, (steps = (await catalog.get(item.event_type)).steps));
        done.push({ event, item, outcome: runPipeline(item, stepsFor(steps), elapsedMs, clock.now()) });
      }
      // One statement records the outcomes of items that had none; `delete` also drops a second copy of one item.
      const recorded = await outcomes(tx.db).recordNew(
        done.map(({ event, item, outcome }) => ({
          itemId: item.item_id,
          outcome: outcome.type === 'DataProcessed' ? 'processed' : 'failed',
          position: event.position,
        })),
      );
      await tx.appendMany(
        done
          .filter(({ item }) => recorded.delete(item.item_id))
          .map(({ event, item, outcome }) => ({
            streamId: dataStreamId(item.item_id),
            events: [{ ...outcome, metadata: causedBy(event) }],
          })),
      );
    },
  };
}

/**
 * A stored pipeline that today's rules refuse (saved before a rule about its options existed) fails
 * each item it would process, with the reason, instead of stopping the subscriber on every batch.
 */
function buildOrRefuse(config: readonly StepConfig[], processors: ProcessorRegistry | undefined): Processor[] {
  try {
    return buildPipeline(config, processors);
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    const reason = `the pipeline cannot run: ${error.message}`;
    return [{ name: 'pipeline', run: () => failed(reason) }];
  }
}
