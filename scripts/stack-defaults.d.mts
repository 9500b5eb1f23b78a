export interface StackDefaults {
  readonly bindHost: string;
  readonly adminToken: string;
  /** No ADMIN_TOKEN was given: the token was generated for this run. */
  readonly generated: boolean;
}
export function stackDefaults(env: Record<string, string | undefined>): StackDefaults;
/** URLs (a comma list) as the stack prints them, without a password or token before a host. */
export function redactedUrls(urls: string): string;
