import type { Clock } from '../../shared/clock.js';
import type { DataIngested } from '../../shared/contracts/data-events.js';
import { dataStreamId } from '../../shared/contracts/data-events.js';
import { extendedEvent } from '../../shared/event-store/serialized-event.js';
import { causedBy } from '../../shared/events.js';
import type { Subscriber } from '../../shared/subscriptions/subscriber.js';
import { decideVerdict } from '../domain/verdict.js';
import type { Violation } from '../../shared/contracts/data-events.js';
import { ValidationError } from '../../shared/errors.js';
import type { SchemaDocument } from '../domain/schema-registry.js';
import type { CatalogFor, SchemaCompiler, VerdictLogFor } from './ports.js';

export interface ValidationSubscriberDeps {
  readonly clock: Clock;
  readonly compiler: SchemaCompiler;
  readonly catalog: CatalogFor;
  readonly verdicts: VerdictLogFor;
  /**
   * `log`: the schema in force at the item's position in this store's log (one shared log: exact).
   * `time`: the schema in force at the item's received_at (items come from another service's log).
   */
  readonly schemaOrder?: 'log' | 'time';
}

/**
 * Judges each ingested item against the schema in force at its ingestion, and records the verdict on
 * the item's stream. A batch is handled in a few statements: one to learn which types have schemas,
 * one to record the verdicts (an item that already has one is skipped), one append for all.
 */
export function validationSubscriber({ clock, compiler, catalog, verdicts, schemaOrder }: ValidationSubscriberDeps): Subscriber {
  const compile = compilerOrRefusal(compiler);
  return {
    name: 'validation',
    handles: ['DataIngested'],
    async handle(events, tx) {
      const schemas = catalog(tx.db);
      const withSchemas = await schemas.typesWithSchemas([...new Set(events.map((e) => (e as unknown as DataIngested).data.event_type))]);
      const now = clock.now();
      const decided = [];
      for (const event of events) {
        const item = (event as unknown as DataIngested).data;
        const stored = !withSchemas.has(item.event_type)
          ? undefined
          : schemaOrder === 'time'
            ? await schemas.inForceAtTime(item.event_type, item.partner_id, item.received_at)
            : await schemas.inForceAt(item.event_type, item.partner_id, event.position);
        const schema = stored && {
          version: stored.version,
          partnerId: stored.partnerId,
          // A key no event type and source can share (`a|b` for every source against `a` for source `b|`).
          check: compile(stored.schema, JSON.stringify([stored.eventType, stored.partnerId, stored.version])),
        };
        decided.push({ event, item, verdict: decideVerdict(item, schema, now) });
      }
      const recorded = await verdicts(tx.db).recordNew(
        decided.map(({ event, item, verdict }) => ({
          itemId: item.item_id,
          verdict: verdict.type === 'DataValidated' ? 'valid' : 'invalid',
          position: event.position,
        })),
      );
      // `delete` also drops a second copy of one item within the batch.
      await tx.appendMany(
        decided
          .filter(({ item }) => recorded.delete(item.item_id))
          .map(({ event, item, verdict }) => {
            const verdictEvent = { ...verdict, metadata: causedBy(event) };
            return {
              streamId: dataStreamId(item.item_id),
              // A valid item's verdict is the item and three fields: written from the item's own text.
              events: [
                verdictEvent.type === 'DataValidated'
                  ? extendedEvent(event, verdictEvent, {
                      schema_version: verdictEvent.data.schema_version,
                      schema_partner_id: verdictEvent.data.schema_partner_id,
                      validated_at: verdictEvent.data.validated_at,
                    })
                  : verdictEvent,
              ],
            };
          }),
      );
    },
  };
}

/**
 * A stored schema that today's limits refuse (registered before the limit existed) judges each item
 * invalid, with the reason, instead of failing the subscriber on every item of its type. The refusal
 * is kept per schema version, as compiled checks are.
 */
function compilerOrRefusal(compiler: SchemaCompiler) {
  const refusals = new Map<string, Violation[]>();
  return (schema: SchemaDocument, cacheKey: string): ((payload: unknown) => Violation[]) => {
    const known = refusals.get(cacheKey);
    if (known) return () => known;
    try {
      return compiler.compile(schema, cacheKey);
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      const message = `the schema in force cannot be used: ${error.message}; register a new version`;
      const refused: Violation[] = [{ path: 'schema', rule: 'schema-refused', message }];
      refusals.set(cacheKey, refused);
      return () => refused;
    }
  };
}
