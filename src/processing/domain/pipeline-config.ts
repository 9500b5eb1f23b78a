import type { StepConfig } from './processor.js';

export interface PipelineConfigured {
  readonly type: 'PipelineConfigured';
  readonly data: { event_type: string; steps: StepConfig[]; configured_at: string };
}

export interface PipelineReset {
  readonly type: 'PipelineReset';
  readonly data: { event_type: string; reset_at: string };
}

export type PipelineEvent = PipelineConfigured | PipelineReset;
export const PIPELINE_EVENT_TYPES = ['PipelineConfigured', 'PipelineReset'] as const;

export const pipelineStreamId = (eventType: string) => `pipeline-${eventType}`;
