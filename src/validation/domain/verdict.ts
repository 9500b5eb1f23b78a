import type { DataInvalid, DataValidated, ItemSnapshot, Violation } from '../../shared/contracts/data-events.js';

/** The schema that applies to an item, if any: the version in force when it was ingested. */
export interface ApplicableSchema {
  readonly version: number;
  /** The source the schema is for; null for the schema of every source. Each numbers its versions. */
  readonly partnerId: string | null;
  check(payload: unknown): Violation[];
}

/** An item with no schema is valid; otherwise every violation is reported, not just the first. */
export function decideVerdict(item: ItemSnapshot, schema: ApplicableSchema | undefined, at: Date): DataValidated | DataInvalid {
  const violations = schema ? schema.check(item.payload) : [];
  const validatedAt = at.toISOString();
  const judgedBy = { schema_version: schema?.version ?? null, schema_partner_id: schema?.partnerId ?? null };
  if (violations.length === 0) return { type: 'DataValidated', data: { ...item, ...judgedBy, validated_at: validatedAt } };
  return {
    type: 'DataInvalid',
    data: {
      item_id: item.item_id,
      partner_id: item.partner_id,
      event_type: item.event_type,
      ...judgedBy,
      errors: violations,
      validated_at: validatedAt,
    },
  };
}
