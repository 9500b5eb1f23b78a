import type { QueueConfig, WebhookConfig } from '../domain/destination-config.js';
import { credentialsOf, isSecretReference, slotKey, withCredentials, type DestinationLike } from '../domain/destination-secrets.js';
import type { DeliveryOutcome, DeliveryRequest, QueuePublisher, WebhookSender } from './destination.js';
import type { SecretVault, StoredRule } from './ports.js';

/** A destination ready to store: its credentials replaced by references, and the clear values to seal under new ones. */
export interface SealedDestination<T> {
  readonly destination: T;
  /** Reference → clear value, for the vault. */
  readonly values: Readonly<Record<string, string>>;
}

/**
 * Replaces each credential of a validated destination by a reference. One whose value is what the
 * rule already holds keeps its reference, so the destination (and its circuit) stays the same;
 * any other, a value saved in clear before sealing existed included, is sealed under a new one.
 */
export function sealedDestination<T extends DestinationLike>(
  destination: T,
  current: { readonly stored: DestinationLike; readonly clear: DestinationLike } | undefined,
  newReference: () => string,
): SealedDestination<T> {
  const byKey = (d: DestinationLike) => new Map([...credentialsOf(d)].map(([slot, value]) => [slotKey(slot), value]));
  const stored = current ? byKey(current.stored) : new Map<string, string>();
  const clear = current ? byKey(current.clear) : new Map<string, string>();
  const values: Record<string, string> = {};
  const sealed = withCredentials(destination, (slot, value) => {
    const kept = stored.get(slotKey(slot));
    if (kept !== undefined && isSecretReference(kept) && clear.get(slotKey(slot)) === value) return kept;
    const reference = newReference();
    values[reference] = value;
    return reference;
  });
  return { destination: sealed, values };
}

/** A destination with its credentials in clear, and the slots whose sealed value is not there (or does not open). */
export async function revealedDestination<T extends DestinationLike>(
  vault: Pick<SecretVault, 'openValues'>,
  ruleId: string,
  destination: T,
): Promise<{ readonly destination: T; readonly missing: readonly string[] }> {
  const references = [...credentialsOf(destination).values()].filter(isSecretReference);
  if (references.length === 0) return { destination, missing: [] };
  const opened = await vault.openValues(ruleId, references);
  const missing: string[] = [];
  const revealed = withCredentials(destination, (slot, value) => {
    if (!isSecretReference(value)) return value;
    const clear = opened.get(value);
    if (clear === undefined) missing.push(slot);
    return clear ?? value;
  });
  return { destination: revealed, missing };
}

/** Refusals for want of the rule's own credentials, as their outcomes are told apart (`lacksCredentials`). */
const credentialRefusals = new WeakSet<DeliveryOutcome>();
const missingCredentials = (reason: string): DeliveryOutcome => {
  const outcome: DeliveryOutcome = { outcome: 'rejected', reason, durationMs: 0 };
  credentialRefusals.add(outcome);
  return outcome;
};

/** Whether nothing was sent because the rule's credentials were not there (a rule deleted meanwhile takes them with it). */
export const lacksCredentials = (outcome: DeliveryOutcome): boolean => credentialRefusals.has(outcome);

/**
 * Sends to a webhook or queue rule's destination with its credentials in clear; a webhook signed with
 * the rule's secrets in force at `at` (the current one, and the one a rotation replaced while it is honoured).
 */
export async function sendWithCredentials(
  deps: { readonly vault: SecretVault; readonly webhooks: WebhookSender; readonly queues: QueuePublisher },
  rule: StoredRule,
  request: DeliveryRequest,
  at: string,
): Promise<DeliveryOutcome> {
  const { destination, missing } = await revealedDestination(deps.vault, rule.rule_id, rule);
  if (missing.length > 0)
    return missingCredentials(`the sealed ${missing.join(', ')} of the destination did not open: give them again (PUT the rule)`);
  if (destination.destination_type === 'queue') return deps.queues.publish(destination.destination_config as QueueConfig, request);
  const [signingSecret, previousSigningSecret] = await deps.vault.signingSecrets(rule.rule_id, at);
  if (signingSecret === undefined) return missingCredentials('the rule has no signing secret');
  const config = destination.destination_config as WebhookConfig;
  return deps.webhooks.send(
    {
      url: config.url,
      signingSecret,
      ...(previousSigningSecret === undefined ? {} : { previousSigningSecret }),
      ...(config.headers ? { headers: config.headers } : {}),
    },
    request,
  );
}
