import type { DataInvalid, DataValidated, ItemSnapshot, Violation } from '../../shared/contracts/data-events.js';

/** The schema that applies to an item, if any: the version in force when it was ingested. */
export interface ApplicableSchema {
  readonly version: number;
  check(payload: unknown): Violation[];
}

/** An item with no schema is valid; otherwise every violation is reported, not just the first. */
export function decideVerdict(item: ItemSnapshot, schema: ApplicableSchema | undefined, at: Date): DataValidated | DataInvalid {
  const violations = schema ? schema.check(item.payload) : [];
  const validatedAt = at.toISOString();
  const schemaVersion = schema?.version ?? null;
  if (violations.length === 0)
    return { type: 'DataValidated', data: { ...item, schema_version: schemaVersion, validated_at: validatedAt } };
  return {
    type: 'DataInvalid',
    data: {
      item_id: item.item_id,
      partner_id: item.partner_id,
      event_type: item.event_type,
      schema_version: schemaVersion,
      errors: violations,
      validated_at: validatedAt,
    },
  };
}
