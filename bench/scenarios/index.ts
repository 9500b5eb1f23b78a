import { batchIngestion } from './batch.js';
import { distributed } from './distributed.js';
import { ingestThroughput } from './ingest-throughput.js';
import { endToEndLag } from './lag.js';
import { ingestWithRules } from './rules.js';
import { segmentBatchIngestion } from './segment-batch.js';
import { statisticsCost } from './statistics.js';
import { tracking } from './tracking.js';
import type { Scenario } from './types.js';

/** Every bench section, in the order they run (`distributed` only with --distributed). */
export const scenarios: readonly Scenario[] = [
  ingestThroughput,
  endToEndLag,
  batchIngestion,
  segmentBatchIngestion,
  ingestWithRules,
  statisticsCost,
  tracking,
  distributed,
];
