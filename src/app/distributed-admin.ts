import type { Kysely } from 'kysely';
import { NotFoundError } from '../shared/errors.js';
import type { BusSubscriptions } from '../shared/messaging/bus-subscriptions.js';
import { pageParked } from '../shared/subscriptions/checkpoints.js';
import type { SubscriptionAdmin } from './http/subscription-routes.js';

export interface RoleConsumers {
  readonly consumers: BusSubscriptions;
  /** The role's own schema, where its parked events are. */
  readonly db: Kysely<object>;
}

/**
 * The subscription admin API of a distributed process: each subscriber is operated on the role that
 * owns it (a process may run several roles, each with its consumers and its schema).
 */
export function busSubscriptionAdmin(roles: readonly RoleConsumers[]): SubscriptionAdmin {
  const owner = (name: string): RoleConsumers => {
    const found = roles.find((role) => role.consumers.names().includes(name));
    if (!found) {
      const known = roles.flatMap((role) => role.consumers.names());
      throw new NotFoundError('subscriptions.unknown-subscriber', `no subscriber named "${name}" here (known: ${known.join(', ')})`);
    }
    return found;
  };
  return {
    status: async () => (await Promise.all(roles.map((role) => role.consumers.status()))).flat(),
    replay: (name) => owner(name).consumers.replay(name),
    retryParked: (name, ref) => owner(name).consumers.retryParked(name, ref),
    discardParked: (name, ref) => owner(name).consumers.discardParked(name, ref),
    parked: (name, page) => pageParked(owner(name).db, name, page),
  };
}
