import { describe, expect, it } from 'vitest';
import { commonWildcard } from './nats/nats-message-bus.js';
import { subjectsOfSubscriber } from './event-messages.js';

/** Where contexts run, as a distributed composition says. */
const roleRunning = (context: string) => ({ routing: 'routing', applications: 'ingestion' })[context];

describe('the subjects a subscriber reads', () => {
  it('are its types under the role that runs the context it names, so one wildcard covers only that role', () => {
    const replica = { handles: ['RoutingRuleCreated', 'RoutingRuleDeleted'], from: 'routing' };
    const subjects = subjectsOfSubscriber(replica, roleRunning, 'acme');
    expect(subjects).toEqual(['acme.routing.RoutingRuleCreated', 'acme.routing.RoutingRuleDeleted']);
    // A broker with one filter per consumer (NATS before 2.10) gets the routing role's messages, not every item's.
    expect(commonWildcard(subjects)).toBe('acme.routing.>');
  });

  it('are its types from whichever role when it names no context, or one no role runs', () => {
    expect(subjectsOfSubscriber({ handles: ['DataIngested', 'DataValidated'] }, roleRunning, 'acme')).toEqual([
      'acme.*.DataIngested',
      'acme.*.DataValidated',
    ]);
    expect(subjectsOfSubscriber({ handles: ['A'], from: 'nowhere' }, roleRunning, 'acme')).toEqual(['acme.*.A']);
  });
});
