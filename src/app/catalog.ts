import type { Registry } from 'prom-client';
import type { WriteKeyVerifier } from '../shared/http/auth.js';
import type { ContextModule, ContextTables, ModuleDeps } from '../shared/context-module.js';
import type { Config } from './config.js';
import type { OptionalContext } from './optional-contexts.js';
import { routingOptionsFrom } from './routing-options.js';
import { applicationsModule, applicationsReplica, applicationsTables } from '../applications/module.js';
import { attributionModule, attributionTables } from '../attribution/module.js';
import { ingestionModule, ingestionTables, type IngestionModule } from '../ingestion/module.js';
import { analyticsModule, analyticsTables } from '../analytics/module.js';
import type { EnsureSource, RouteEvent } from '../ingestion/application/ports.js';
import { processingModule, processingTables } from '../processing/module.js';
import type { ProcessorRegistry } from '../processing/domain/pipeline.js';
import { queryModule, queryTables } from '../query/module.js';
import { routingModule, routingRulesReplica, routingTables } from '../routing/module.js';
import { statisticsModule, statisticsTables } from '../statistics/module.js';
import { trackingModule, trackingTables } from '../tracking/module.js';
import { validationModule, validationTables } from '../validation/module.js';

/** Where a context runs: with every other one on one log, or as a service that owns only its own data. */
export type Placement = 'embedded' | 'distributed';

/** What a composition root knows that a context's builder may need: where it runs, and the configuration. */
export interface Composition {
  readonly placement: Placement;
  readonly config: Config;
}

/** The few query functions contexts offer each other inside one process (never writes). */
export interface ContextLinks {
  /** applications → ingestion: the admin's first write as a source creates it. */
  readonly ensureSource?: EnsureSource;
  /** applications → routing: rules may only name existing applications. */
  readonly applicationExists?: (appId: string) => Promise<boolean>;
  /** applications → the HTTP edge. */
  readonly verifyWriteKey?: WriteKeyVerifier;
  /** ingestion → analytics: the batch use case its messages go through. */
  readonly ingestBatch?: IngestionModule['ingestBatch'];
  /** routing → ingestion: rules evaluated on the ingest path, for the response's routing summary. */
  readonly route?: RouteEvent;
  /** The composition root → routing: delivery outcomes for the metrics. */
  readonly onDeliveryOutcome?: (destinationType: string, status: string) => void;
  /** The composition root → routing: where per-destination metrics register (the storage side's registry). */
  readonly metricsRegistry?: Registry;
  /** The composition root → processing: processors beyond the built-in ones (tests). */
  readonly processors?: ProcessorRegistry;
}

/** A bounded context as every composition sees it: its storage, and how to build it. */
export type ContextDescriptor = (
  | { readonly name: string; readonly optional: false }
  /**
   * Left out of the embedded process when named in INTAKE_DISABLE; `paths` are where its HTTP adapter
   * answers (each path and what lies under it), so that a request there is told the context is off
   * rather than that no such route exists.
   */
  | { readonly name: OptionalContext; readonly optional: true; readonly paths: readonly string[] }
) &
  ContextBuilder;

interface ContextBuilder {
  readonly tables: ContextTables;
  /** Builds the context; what it offers others goes into `offers`. */
  build(deps: ModuleDeps, links: ContextLinks, composition: Composition): ContextModule & { readonly offers?: Partial<ContextLinks> };
}

const missing = (link: string, context: string): never => {
  throw new Error(`${context} needs ${link}: list the context that offers it earlier in the composition`);
};

/** Every context of Intake, in the order they are built (those that offer links come first). */
export const CONTEXTS: readonly ContextDescriptor[] = [
  {
    name: 'applications',
    optional: false,
    tables: applicationsTables,
    build(deps) {
      const applications = applicationsModule(deps);
      return {
        ...applications,
        offers: {
          ensureSource: applications.ensureApplication,
          applicationExists: async (appId) => (await applications.find(appId)) !== undefined,
          verifyWriteKey: applications.verifyWriteKey,
        },
      };
    },
  },
  {
    name: 'routing',
    optional: true,
    paths: ['/api/routing-rules', '/api/routing'],
    tables: routingTables,
    build(deps, links, { config, placement }) {
      const routing = routingModule(deps, {
        ...routingOptionsFrom(config, links.applicationExists ?? missing('applicationExists', 'routing'), links.onDeliveryOutcome),
        ...(links.metricsRegistry ? { metricsRegistry: links.metricsRegistry } : {}),
        sharesLog: placement === 'embedded',
        ...(placement === 'distributed' ? { ruleCacheMaxAgeMs: REPLICA_RULE_CACHE_MS } : {}),
      });
      return { ...routing, offers: { route: routing.evaluate } };
    },
  },
  {
    name: 'ingestion',
    optional: false,
    tables: ingestionTables,
    build(deps, links, { config }) {
      const ingestion = ingestionModule(deps, {
        ...(links.route ? { route: links.route } : {}),
        ...(links.ensureSource ? { ensureSource: links.ensureSource } : {}),
        idempotencyWindowMs: config.idempotencyWindowHours * 3600_000,
      });
      return { ...ingestion, offers: { ingestBatch: ingestion.ingestBatch } };
    },
  },
  {
    name: 'analytics',
    optional: true,
    paths: ['/v1', '/beacon/v1', '/api/profiles', '/api/analytics'],
    tables: analyticsTables,
    build: (deps, links, { config }) =>
      analyticsModule(deps, {
        ...(config.publicUrl ? { publicUrl: config.publicUrl } : {}),
        ingest: links.ingestBatch ?? missing('ingestBatch', 'analytics'),
        resolveWriteKey: links.verifyWriteKey ?? missing('verifyWriteKey', 'analytics'),
        applicationExists: links.applicationExists ?? missing('applicationExists', 'analytics'),
      }),
  },
  {
    name: 'validation',
    optional: true,
    paths: ['/api/schemas'],
    tables: validationTables,
    // Distributed, items come from ingestion's log: the schema in force is found by the item's received_at.
    build: (deps, _links, { placement }) => validationModule(deps, placement === 'embedded' ? 'log' : 'time'),
  },
  {
    name: 'processing',
    optional: true,
    paths: ['/api/pipelines'],
    tables: processingTables,
    build: (deps, links) => processingModule(deps, links.processors),
  },
  {
    name: 'query',
    optional: true,
    paths: ['/query', '/api/events'],
    tables: queryTables,
    build: (deps, _links, { placement }) => queryModule(deps, placement === 'embedded' ? 'shared-log' : 'own-copy'),
  },
  { name: 'tracking', optional: true, paths: ['/api/v1/tracking'], tables: trackingTables, build: (deps) => trackingModule(deps) },
  {
    name: 'attribution',
    optional: true,
    paths: ['/api/v1/attribution', '/api/v1/tracking/conversions'],
    tables: attributionTables,
    build: (deps) => attributionModule(deps),
  },
  {
    name: 'statistics',
    optional: true,
    paths: ['/api/statistics'],
    tables: statisticsTables,
    build: (deps, _links, { placement }) => statisticsModule(deps, placement === 'embedded'),
  },
];

/**
 * Replicas of a distributed role share their durable consumers, so each rule event reaches one of
 * them: the others read a changed rule again within this time.
 */
const REPLICA_RULE_CACHE_MS = 1000;

/** Copies of another service's data, kept from its events: only the distributed mode needs them. */
export const REPLICAS = {
  routingRules: {
    name: 'routing-rules-replica',
    optional: false,
    tables: routingTables,
    build(deps) {
      const rules = routingRulesReplica(deps, { maxAgeMs: REPLICA_RULE_CACHE_MS });
      return { name: 'routing-rules-replica', subscribers: [rules.subscriber], offers: { route: rules.evaluate } };
    },
  },
  applications: {
    name: 'applications-replica',
    optional: false,
    tables: applicationsTables,
    build(deps) {
      const applications = applicationsReplica(deps);
      return {
        name: 'applications-replica',
        subscribers: [applications.subscriber],
        offers: { applicationExists: applications.exists },
      };
    },
  },
} satisfies Record<string, ContextDescriptor>;

export function contextNamed(name: string): ContextDescriptor {
  const found = CONTEXTS.find((context) => context.name === name);
  if (!found) throw new Error(`no context named "${name}"`);
  return found;
}

/** Builds the given contexts in order, passing each the links the ones before it offer. */
export function buildContexts(
  descriptors: readonly ContextDescriptor[],
  deps: ModuleDeps,
  composition: Composition,
  given: ContextLinks = {},
): { modules: ContextModule[]; links: ContextLinks } {
  let links: ContextLinks = given;
  const modules = descriptors.map((descriptor) => {
    const { offers, ...module } = descriptor.build(deps, links, composition);
    if (offers) links = { ...links, ...offers };
    return module;
  });
  return { modules, links };
}
