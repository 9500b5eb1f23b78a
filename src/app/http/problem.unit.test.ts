import { describe, expect, it } from 'vitest';
import { problemFor } from './problem.js';

const errorWith = (code: string, message: string) => Object.assign(new Error(message), { code });

describe('problems for errors that are no domain error', () => {
  it('answers a request whose client went away before its body arrived as aborted, not as an outage', () => {
    expect(problemFor(errorWith('ECONNRESET', 'aborted'), '/ingest')).toMatchObject({ status: 400, code: 'request.aborted' });
  });

  it('answers a lost database connection as unavailable, to be retried', () => {
    for (const error of [errorWith('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432'), errorWith('ECONNRESET', 'read ECONNRESET')]) {
      expect(problemFor(error, '/ingest')).toMatchObject({ status: 503, code: 'service.dependency-unavailable' });
    }
  });

  it('answers a database that takes no connections, or a host that does not resolve, as unavailable too', () => {
    for (const error of [
      errorWith('55000', 'database "intake" is not currently accepting connections'),
      errorWith('ENOTFOUND', 'getaddrinfo ENOTFOUND db.internal'),
      errorWith('57P03', 'the database system is starting up'),
      new Error('timeout exceeded when trying to connect'),
      // A read on the HTTP thread's own SQLite connection: the file failing, or held longer than its busy timeout.
      errorWith('SQLITE_IOERR_FSTAT', 'disk I/O error'),
      errorWith('SQLITE_BUSY', 'database is locked'),
    ]) {
      expect(problemFor(error, '/ingest'), error.message).toMatchObject({ status: 503, code: 'service.dependency-unavailable' });
    }
    // The same class for a request's own doing is not an outage.
    expect(problemFor(errorWith('55000', 'cannot refresh materialized view concurrently'), '/ingest')).toMatchObject({ status: 500 });
  });
});
