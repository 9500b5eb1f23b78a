import { withoutUrlCredentials } from '../url-credentials.js';

/** Query parameters the pg driver takes credentials from (`?password=` works as well as `user:pass@`). */
const SECRET_PARAMETERS = /^(password|sslpassword|sslkey|sslcert)$/i;

/** A connection URL fit for messages and logs: the password is left out, wherever the URL gives it. */
export function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    for (const name of [...parsed.searchParams.keys()]) if (SECRET_PARAMETERS.test(name)) parsed.searchParams.set(name, '***');
    return parsed.toString();
  } catch {
    return withoutUrlCredentials(url);
  }
}
