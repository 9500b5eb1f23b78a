import { EVENT_TYPE_PATTERN, EVENT_TYPE_RULE } from '../../shared/contracts/event-type-rule.js';
import { hash } from 'node:crypto';
import { ConflictError, NotFoundError, ValidationError } from '../../shared/errors.js';
import { validateCondition, type Condition } from './condition.js';
import { parseDestination, type DestinationConfig, type DestinationType } from './destination-config.js';
import { parseOrderingKey } from './ordering-key.js';
import { longerThan } from '../../shared/contracts/text-length.js';

/** A routing rule: which events of an application go where. */
export interface RuleFields {
  app_id: string;
  rule_name: string;
  event_type_filter: string | null;
  condition: Condition;
  destination_type: DestinationType;
  destination_config: DestinationConfig;
  priority: number;
  is_active: boolean;
  /** A path such as `payload.customer_id`: deliveries with the same value go one at a time, in log order. */
  ordering_key: string | null;
}

export interface RoutingRuleCreated {
  readonly type: 'RoutingRuleCreated';
  readonly data: RuleFields & { rule_id: string; created_at: string };
}
export interface RoutingRuleUpdated {
  readonly type: 'RoutingRuleUpdated';
  readonly data: RuleFields & { rule_id: string; updated_at: string };
}
export interface RoutingRuleToggled {
  readonly type: 'RoutingRuleToggled';
  readonly data: { rule_id: string; app_id: string; is_active: boolean; toggled_at: string; reason?: string };
}
export interface RoutingRuleDeleted {
  readonly type: 'RoutingRuleDeleted';
  readonly data: { rule_id: string; app_id: string; deleted_at: string };
}
/** The secret itself is never in the log: only that it changed. */
export interface WebhookSecretRotated {
  readonly type: 'WebhookSecretRotated';
  readonly data: { rule_id: string; app_id: string; rotated_at: string };
}

export type RoutingRuleEvent = RoutingRuleCreated | RoutingRuleUpdated | RoutingRuleToggled | RoutingRuleDeleted | WebhookSecretRotated;
export const RULE_EVENT_TYPES = [
  'RoutingRuleCreated',
  'RoutingRuleUpdated',
  'RoutingRuleToggled',
  'RoutingRuleDeleted',
  'WebhookSecretRotated',
] as const;

export type RuleState =
  | { readonly status: 'absent' }
  | { readonly status: 'live'; readonly fields: RuleFields; readonly createdAt: string }
  | { readonly status: 'deleted' };
export const noRule: RuleState = { status: 'absent' };

export const ruleStreamId = (ruleId: string) => `routing-rule-${ruleId}`;

export interface RuleInput {
  app_id: string;
  rule_name: unknown;
  event_type_filter?: unknown;
  condition?: unknown;
  destination_type: unknown;
  destination_config?: unknown;
  priority?: unknown;
  is_active?: unknown;
  ordering_key?: unknown;
}

/**
 * Validates every field of a rule, including its condition and destination, at save time. `stored` is
 * the rule before the change: a destination it keeps as it is was accepted then (see parseDestination).
 */
export function parseRule(input: RuleInput, stored?: RuleFields): RuleFields {
  const name = input.rule_name;
  if (typeof name !== 'string' || name.trim().length === 0 || longerThan(name, 255)) {
    throw new ValidationError('routing.invalid-rule', 'rule_name must be 1-255 characters', [
      { path: 'rule_name', message: 'must be 1-255 characters' },
    ]);
  }
  const filter = input.event_type_filter ?? null;
  // A filter no event type can equal (a space at an end, a line break) would leave the rule matching nothing, unsaid.
  if (filter !== null && (typeof filter !== 'string' || !EVENT_TYPE_PATTERN.test(filter))) {
    throw new ValidationError('routing.invalid-rule', 'event_type_filter must be null or an event type', [
      { path: 'event_type_filter', message: `must be null or an event type: ${EVENT_TYPE_RULE}` },
    ]);
  }
  const priority = input.priority ?? 0;
  if (!Number.isInteger(priority) || Math.abs(priority as number) > 1_000_000) {
    throw new ValidationError('routing.invalid-rule', 'priority must be an integer between -1000000 and 1000000', [
      { path: 'priority', message: 'must be an integer between -1000000 and 1000000' },
    ]);
  }
  const destination = parseDestination(input.destination_type, input.destination_config, {
    unchanged: stored !== undefined && !changesDestination(stored, input),
  });
  return {
    app_id: input.app_id,
    rule_name: name.trim(),
    event_type_filter: filter as string | null,
    condition: validateCondition(input.condition),
    destination_type: destination.type,
    destination_config: destination.config,
    priority: priority as number,
    is_active: input.is_active === undefined ? true : input.is_active === true,
    ordering_key: parseOrderingKey(input.ordering_key),
  };
}

export function decideCreate(ruleId: string, fields: RuleFields, state: RuleState, at: Date): RoutingRuleCreated {
  if (state.status !== 'absent') throw new ConflictError('routing.rule-exists', `rule ${ruleId} already exists`);
  return { type: 'RoutingRuleCreated', data: { ...fields, rule_id: ruleId, created_at: at.toISOString() } };
}

export function decideUpdate(ruleId: string, fields: RuleFields, state: RuleState, at: Date): RoutingRuleUpdated {
  const live = requireLive(ruleId, state);
  if (fields.app_id !== live.fields.app_id) {
    throw new ValidationError('routing.invalid-rule', 'a rule cannot move to another application', [
      { path: 'app_id', message: 'cannot change' },
    ]);
  }
  return { type: 'RoutingRuleUpdated', data: { ...fields, rule_id: ruleId, updated_at: at.toISOString() } };
}

/**
 * Whether a change of the rule sends its deliveries somewhere else: another destination type, or
 * any field of its configuration (the URL, headers, broker, table...). Key order does not count.
 */
export function changesDestination(before: RuleFields, after: RuleFields | RuleInput): boolean {
  return before.destination_type !== after.destination_type || canonical(before.destination_config) !== canonical(after.destination_config);
}

/**
 * Names a rule's destination (its type and every field of its configuration, whatever their key
 * order): two versions of a rule have the same key exactly when they send to the same place. An
 * attempt records its outcome on the circuit and counts of the destination it was sent to.
 */
export function destinationKeyOf(fields: Pick<RuleFields, 'destination_type' | 'destination_config'>): string {
  return hash('sha256', `${fields.destination_type}\n${canonical(fields.destination_config)}`, 'hex').slice(0, 32);
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value !== 'object' || value === null) return JSON.stringify(value) ?? 'null';
  const object = value as Record<string, unknown>;
  return `{${Object.keys(object)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonical(object[key])}`)
    .join(',')}}`;
}

export function decideToggle(ruleId: string, state: RuleState, at: Date, to?: boolean, reason?: string): RoutingRuleToggled {
  const live = requireLive(ruleId, state);
  return {
    type: 'RoutingRuleToggled',
    data: {
      rule_id: ruleId,
      app_id: live.fields.app_id,
      is_active: to ?? !live.fields.is_active,
      toggled_at: at.toISOString(),
      ...(reason ? { reason } : {}),
    },
  };
}

export function decideDelete(ruleId: string, state: RuleState, at: Date): RoutingRuleDeleted {
  const live = requireLive(ruleId, state);
  return { type: 'RoutingRuleDeleted', data: { rule_id: ruleId, app_id: live.fields.app_id, deleted_at: at.toISOString() } };
}

export function decideRotate(ruleId: string, state: RuleState, at: Date): WebhookSecretRotated {
  const live = requireLive(ruleId, state);
  if (live.fields.destination_type !== 'webhook') {
    throw new ValidationError(
      'routing.not-a-webhook',
      `rule ${ruleId} delivers to ${live.fields.destination_type}, which has no signing secret`,
    );
  }
  return { type: 'WebhookSecretRotated', data: { rule_id: ruleId, app_id: live.fields.app_id, rotated_at: at.toISOString() } };
}

export function evolveRule(state: RuleState, event: RoutingRuleEvent): RuleState {
  switch (event.type) {
    case 'RoutingRuleCreated': {
      const { rule_id: _id, created_at, ...fields } = event.data;
      return { status: 'live', fields, createdAt: created_at };
    }
    case 'RoutingRuleUpdated': {
      const { rule_id: _id, updated_at: _at, ...fields } = event.data;
      return state.status === 'live' ? { ...state, fields } : state;
    }
    case 'RoutingRuleToggled':
      return state.status === 'live' ? { ...state, fields: { ...state.fields, is_active: event.data.is_active } } : state;
    case 'RoutingRuleDeleted':
      return { status: 'deleted' };
    case 'WebhookSecretRotated':
      return state;
  }
}

function requireLive(ruleId: string, state: RuleState): Extract<RuleState, { status: 'live' }> {
  if (state.status !== 'live') throw new NotFoundError('routing.rule-not-found', `no routing rule ${ruleId}`);
  return state;
}
