/**
 * The contexts INTAKE_DISABLE may leave out of the embedded process. Their descriptors are in
 * catalog.ts, which only accepts these names for optional contexts; the names live apart so that
 * reading the configuration does not load every context (a second `intake serve` on a taken port
 * answers in well under a second).
 */
export const OPTIONAL_CONTEXTS = [
  'routing',
  'analytics',
  'validation',
  'processing',
  'query',
  'tracking',
  'attribution',
  'statistics',
] as const;

export type OptionalContext = (typeof OPTIONAL_CONTEXTS)[number];
