/** The part of nats.js's connection options that broker URLs give. */
export interface NatsServerOptions {
  readonly servers: string[];
  readonly user?: string;
  readonly pass?: string;
  readonly token?: string;
}

/**
 * Servers and credentials for nats.js from broker URLs (`nats://user:password@host:4222`, `nats://token@host`,
 * a comma list for a cluster). The client does not read credentials from a URL: it drops them where the host
 * has a dot, and where it has none (`nats`, as in docker-compose) takes `user:password@host:port` for an
 * IPv6 address and fails with "Invalid URL". So they are taken out and handed over as options. The client
 * authenticates to every server alike: the credentials of the first server that names some count.
 */
export function natsServerOptions(urls: string | readonly string[]): NatsServerOptions {
  const servers: string[] = [];
  let credentials: Omit<NatsServerOptions, 'servers'> | undefined;
  for (const server of (typeof urls === 'string' ? urls.split(',') : urls).map((entry) => entry.trim())) {
    const url = URL.canParse(server) ? new URL(server) : undefined;
    if (url === undefined || url.username === '') {
      servers.push(server);
      continue;
    }
    const user = decoded(url.username);
    // A user without a password is a token, as in the other NATS clients.
    credentials ??= url.password === '' ? { token: user } : { user, pass: decoded(url.password) };
    url.username = '';
    url.password = '';
    servers.push(url.href);
  }
  return { servers, ...credentials };
}

/** URLs keep user information percent-encoded; a stray `%` stands for itself. */
function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
