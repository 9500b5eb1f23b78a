import { performance } from 'node:perf_hooks';
import type { ContextModule, ContextTables, ModuleDeps } from '../shared/context-module.js';
import { configurePipeline, resetPipeline } from './application/configure-pipeline.js';
import { processingSubscriber } from './application/processing-subscriber.js';
import { pipelineHttp } from './adapters/http/pipeline-routes.js';
import { processingMigrations } from './adapters/sql/migrations.js';
import { pipelinesProjection, sqlOutcomeLog, sqlPipelineCatalog } from './adapters/sql/sql-pipelines.js';
import type { ProcessorRegistry } from './domain/pipeline.js';

export const processingTables: ContextTables = { migrations: [processingMigrations], inlineProjections: [pipelinesProjection] };

export function processingModule({ store, db, clock }: ModuleDeps, processors?: ProcessorRegistry): ContextModule {
  const pipelines = sqlPipelineCatalog(db);
  return {
    name: 'processing',
    subscribers: [
      processingSubscriber({
        clock,
        elapsedMs: () => performance.now(),
        pipelines: sqlPipelineCatalog,
        outcomes: sqlOutcomeLog,
        processors,
      }),
    ],
    http: [
      pipelineHttp({
        configure: configurePipeline({ store, clock, processors }),
        reset: resetPipeline({ store, clock }),
        get: (eventType) => pipelines.get(eventType),
        list: (page) => pipelines.list(page),
      }),
    ],
  };
}
