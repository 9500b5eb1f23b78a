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
});
