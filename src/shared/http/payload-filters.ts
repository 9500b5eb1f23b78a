import type { FastifyRequest } from 'fastify';
import { ValidationError } from '../errors.js';

/**
 * For lists that take no `payload.<field>` filter: one asked of them is refused, where ignoring it
 * answered every item to a caller who believed them filtered.
 */
export async function refusePayloadFilters(request: FastifyRequest): Promise<void> {
  const asked = Object.keys((request.query ?? {}) as object).filter((key) => key.startsWith('payload.'));
  if (asked.length === 0) return;
  throw new ValidationError(
    'request.unsupported-filter',
    `this list takes no payload filter (${asked.join(', ')}): /query/partner/{partner_id} and /api/events/app/{app_id} do`,
    asked.map((key) => ({ path: key, message: 'is not a filter of this list' })),
  );
}
