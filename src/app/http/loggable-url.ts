/** Query parameters and route parameters that carry credentials (a beacon's `?writeKey=`). */
const SECRET_NAME = /^(write_?key|api_?key|key|token|secret|password)$/i;
const REDACTED = '[redacted]';

/**
 * The request's URL as it may be logged: a credential in the query string or in the path (analytics.js
 * fetches `/v1/projects/<write key>/settings`) is replaced, the rest is kept for reading the log.
 */
export function loggableUrl(url: string, params: unknown): string {
  const queryAt = url.indexOf('?');
  let path = queryAt === -1 ? url : url.slice(0, queryAt);
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
  for (const name of [...new Set(query.keys())]) {
    if (SECRET_NAME.test(name)) query.set(name, REDACTED);
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
