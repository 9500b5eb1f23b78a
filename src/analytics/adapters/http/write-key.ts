/**
 * Where the SDKs put the write key: the Basic auth username (empty password), a Bearer token,
 * `writeKey` in the body (Segment's HTTP API) or in the query string (RudderStack's beacon).
 */
export function writeKeyFromHeader(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const basic = /^Basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(authorization);
  if (basic?.[1]) {
    const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const username = colon === -1 ? decoded : decoded.slice(0, colon);
    return username.length > 0 ? username : undefined;
  }
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  return bearer?.[1];
}

export function writeKeyFromBody(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const key = (body as { writeKey?: unknown }).writeKey;
  return typeof key === 'string' && key.length > 0 ? key : undefined;
}
