import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestIntake, type TestIntake } from '../support/embedded-intake.js';

type Operation = { summary?: string; responses?: Record<string, { content?: Record<string, unknown> }> };

/** Operations that answer without a token and cannot be refused: the probes. */
const CANNOT_FAIL = new Set(['GET /health', 'GET /health/ready', 'GET /api/v1/tracking/health']);

let intake: TestIntake;
let operations: Array<[string, Operation]>;

beforeAll(async () => {
  intake = await startTestIntake();
  const doc = (await intake.app.inject({ method: 'GET', url: '/openapi.json' })).json<{
    paths: Record<string, Record<string, Operation>>;
  }>();
  operations = Object.entries(doc.paths).flatMap(([path, byMethod]) =>
    Object.entries(byMethod).map(([method, operation]): [string, Operation] => [`${method.toUpperCase()} ${path}`, operation]),
  );
});

afterAll(() => intake?.dispose());

describe('the OpenAPI document of the whole service', () => {
  it('gives every operation a summary and a documented success', () => {
    expect(operations.length).toBeGreaterThan(50);
    const lacking = operations.filter(
      ([, operation]) => !operation.summary || !Object.keys(operation.responses ?? {}).some((code) => code.startsWith('2')),
    );
    expect(lacking.map(([name]) => name)).toEqual([]);
  });

  it('documents the problem details every refusable operation can answer with', () => {
    const undocumented = operations.filter(([name, operation]) => {
      if (CANNOT_FAIL.has(name)) return false;
      const problems = Object.entries(operation.responses ?? {}).filter(([code]) => code.startsWith('4'));
      return problems.length === 0 || problems.some(([, response]) => !response.content?.['application/problem+json']);
    });
    expect(undocumented.map(([name]) => name)).toEqual([]);
  });
});
