/** The services Intake can run as, one bounded context (or two) each, and their ports in distributed mode. */
export const ROLES = ['ingestion', 'validation', 'processing', 'query', 'routing', 'statistics', 'tracking', 'attribution'] as const;
export type Role = (typeof ROLES)[number];

export const DEFAULT_PORTS: Readonly<Record<Role, number>> = {
  ingestion: 5001,
  query: 5002,
  validation: 5003,
  processing: 5004,
  routing: 5005,
  statistics: 5006,
  tracking: 5007,
  attribution: 5008,
};

/** `all` or a comma list of roles. */
export function parseRoles(text: string | undefined): Role[] | 'all' {
  if (text === undefined || text.trim() === '' || text.trim() === 'all') return 'all';
  const names = text.split(',').map((name) => name.trim());
  const unknown = names.filter((name) => !(ROLES as readonly string[]).includes(name));
  if (unknown.length > 0) throw new Error(`ROLE must be "all" or a comma list of ${ROLES.join(', ')} (unknown: ${unknown.join(', ')})`);
  return [...new Set(names)] as Role[];
}
