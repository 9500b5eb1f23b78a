/** Query parameters and route parameters that carry credentials (a beacon's `?writeKey=`). */
const SECRET_NAME = /^(write_?key|api_?key|key|(access_?|id_?|refresh_?)?token|secret|password|auth|authorization|bearer|signature|sig)$/i;
const REDACTED = '[redacted]';
/** A write key (`wk_<key id>_<secret>`) or a generated admin token, wherever in a path a client put it. */
const SECRET_SHAPE = /^(wk_[0-9a-f]{16}_|intk_admin_)/i;

/**
 * The request's URL as it may be logged: a credential in the query string or in the path (analytics.js
 * fetches `/v1/projects/<write key>/settings`) is replaced, also in a path no route matched (a typo of
 * that one), the rest is kept for reading the log.
 */
export function loggableUrl(url: string, params: unknown): string {
  const queryAt = url.indexOf('?');
  // A path no route matched has no parameters to name its secrets: their shape gives them away.
  let path = (queryAt === -1 ? url : url.slice(0, queryAt))
    .split('/')
    .map((segment) => (SECRET_SHAPE.test(safeDecode(segment)) ? REDACTED : segment))
    .join('/');
  if (params !== null && typeof params === 'object') {
    for (const [name, value] of Object.entries(params)) {
      if (SECRET_NAME.test(name) && typeof value === 'string' && value.length > 0) {
        path = path
          .split('/')
          .map((segment) => (safeDecode(segment) === value ? REDACTED : segment))
          .join('/');
      }
    }
  }
  if (queryAt === -1) return path;
  const query = new URLSearchParams(url.slice(queryAt + 1));
  // By name, and by shape under any name: a client may send a key as `?access_token=` or under a name of its own.
  for (const name of [...new Set(query.keys())]) {
    if (SECRET_NAME.test(name) || query.getAll(name).some((value) => SECRET_SHAPE.test(value))) query.set(name, REDACTED);
  }
  return `${path}?${query.toString()}`;
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
