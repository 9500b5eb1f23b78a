import { NotFoundError, ValidationError } from '../../shared/errors.js';
import type { Clock } from '../../shared/clock.js';
import type { EventStore } from '../../shared/event-store/event-store.js';
import { buildPipeline, type ProcessorRegistry } from '../domain/pipeline.js';
import { pipelineStreamId, type PipelineConfigured, type PipelineReset } from '../domain/pipeline-config.js';
import type { StepConfig } from '../domain/processor.js';
import type { PipelineView } from './ports.js';

export interface ConfigureDeps {
  readonly store: EventStore;
  readonly clock: Clock;
  readonly processors?: ProcessorRegistry;
}

/** Sets the steps items of one event type go through; refused whole if any step is unknown or misconfigured. */
export const configurePipeline =
  ({ store, clock, processors }: ConfigureDeps) =>
  async (eventType: string, steps: readonly StepConfig[]): Promise<PipelineView> => {
    buildPipeline(steps, processors);
    // Saved, it would have been ignored: normalize reads every string of the payload. Checked here, not
    // in buildPipeline, so that a pipeline stored with it before keeps running.
    const unread = steps.findIndex((step) => step.processor === 'normalize' && step.fields !== undefined);
    if (unread !== -1) {
      throw new ValidationError(
        'processing.invalid-pipeline',
        `steps.${unread}.fields: normalize takes no fields, it normalizes every string`,
        [{ path: `steps.${unread}.fields`, message: 'normalize takes no fields: it normalizes every string of the payload' }],
      );
    }
    const event: PipelineConfigured = {
      type: 'PipelineConfigured',
      data: { event_type: eventType, steps: steps.map((s) => ({ ...s })), configured_at: clock.now().toISOString() },
    };
    await store.append({ streamId: pipelineStreamId(eventType), events: [event] });
    return { eventType, steps: event.data.steps, configuredAt: event.data.configured_at };
  };

/** Goes back to the default pipeline for the event type; 404 when it has none of its own (as a schema's delete). */
export const resetPipeline =
  ({ store, clock }: ConfigureDeps) =>
  async (eventType: string): Promise<void> => {
    const stream = await store.readStream(pipelineStreamId(eventType));
    const last = stream.at(-1);
    if (last === undefined || last.type === 'PipelineReset')
      throw new NotFoundError('processing.pipeline-not-found', `event type ${eventType} has no pipeline of its own`);
    const event: PipelineReset = { type: 'PipelineReset', data: { event_type: eventType, reset_at: clock.now().toISOString() } };
    await store.append({ streamId: pipelineStreamId(eventType), events: [event], expectedVersion: stream.length });
  };
