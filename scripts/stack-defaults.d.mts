export interface StackDefaults {
  readonly bindHost: string;
  readonly adminToken: string;
  /** No ADMIN_TOKEN was given: the token was generated for this run. */
  readonly generated: boolean;
}
export function stackDefaults(env: Record<string, string | undefined>): StackDefaults;
