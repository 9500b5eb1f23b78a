import type { Clock } from '../../shared/clock.js';
import { dataStreamId, type DataValidated } from '../../shared/contracts/data-events.js';
import { causedBy } from '../../shared/events.js';
import type { Subscriber } from '../../shared/subscriptions/subscriber.js';
import { buildPipeline, DEFAULT_PIPELINE, runPipeline, type ProcessorRegistry } from '../domain/pipeline.js';
import { failed, type Processor, type StepConfig } from '../domain/processor.js';
import { ValidationError } from '../../shared/errors.js';
import type { OutcomeLogFor, PipelineCatalogFor, PipelineVersion } from './ports.js';

export interface ProcessingSubscriberDeps {
  readonly clock: Clock;
  /** A monotonic clock in milliseconds, for step durations. */
  readonly elapsedMs: () => number;
  readonly pipelines: PipelineCatalogFor;
  readonly outcomes: OutcomeLogFor;
  /** The processors pipelines may name; the built-in ones by default. */
  readonly processors?: ProcessorRegistry;
}

export const BUILT_PIPELINES = 512;

/** Runs each validated item through its event type's pipeline and records the outcome on the item's stream. */
export function processingSubscriber({ clock, elapsedMs, pipelines, outcomes, processors }: ProcessingSubscriberDeps): Subscriber {
  const built = new Map<string, Processor[]>();
  // Pipelines are built once per configuration, not once per item; past BUILT_PIPELINES the oldest
  // built goes (and is built again if still in use), as every version ever saved would otherwise stay
  // for the life of the process. Nothing is done per item beyond the lookup.
  const stepsFor = (config: readonly StepConfig[]) => {
    const key = JSON.stringify(config);
    let steps = built.get(key);
    if (!steps) {
      built.set(key, (steps = buildOrRefuse(config, processors)));
      if (built.size > BUILT_PIPELINES) built.delete(built.keys().next().value ?? key);
    }
    return steps;
  };

  return {
    name: 'processing',
    handles: ['DataValidated'],
    async handle(events, tx) {
      const items = events.map((event) => ({ event, item: (event as unknown as DataValidated).data }));
      // One read for the batch: most types were never configured, and the others have a few versions.
      const versions = await pipelines(tx.db).versions([...new Set(items.map(({ item }) => item.event_type))]);
      const done = items.map(({ event, item }) => {
        const steps = pipelineAt(versions.get(item.event_type), item.received_at);
        return { event, item, outcome: runPipeline(item, stepsFor(steps), elapsedMs, clock.now()) };
      });
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
 * The pipeline in force when the item arrived, as its schema is: a configuration made after that does
 * not apply to it, however late processing reaches it. Arrival and configuration are compared by time,
 * as the distributed services, each with its own log, can only compare them.
 */
function pipelineAt(versions: readonly PipelineVersion[] | undefined, receivedAt: string): readonly StepConfig[] {
  let steps: readonly StepConfig[] | null = null;
  for (const version of versions ?? []) if (version.configuredAt <= receivedAt) steps = version.steps;
  return steps ?? DEFAULT_PIPELINE;
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
