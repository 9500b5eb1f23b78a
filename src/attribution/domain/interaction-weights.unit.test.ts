import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.js';
import { DEFAULT_WEIGHTS, parseWeights, scoreOf, weightsOf } from './interaction-weights.js';

describe('interaction weights', () => {
  it('default to view 1, click 3, engagement 5', () => {
    expect(DEFAULT_WEIGHTS).toEqual({ view: 1, click: 3, engagement: 5 });
  });

  it('parse from ATTRIBUTION_WEIGHTS text; types left out keep their default', () => {
    expect(parseWeights('view=0.5, click = 2')).toEqual({ view: 0.5, click: 2, engagement: 5 });
    expect(parseWeights('')).toEqual(DEFAULT_WEIGHTS);
  });

  it('refuse every malformed entry at once', () => {
    try {
      parseWeights('view=-1,share=2,click=,engagement=1=2');
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).violations.map((v) => v.path)).toEqual(['view', 'share', 'click', 'engagement']);
    }
  });

  it('refuse a weight so large that a score could overflow (JSON would write it as null), and take one up to a million', () => {
    expect(() => parseWeights('click=1e308')).toThrow(/click must be a number from 0 to 1,000,000/);
    expect(parseWeights('click=1000000')).toEqual({ ...DEFAULT_WEIGHTS, click: 1_000_000 });
  });

  it('refuse a weight that is not a number when given in code', () => {
    expect(() => weightsOf({ click: Number.POSITIVE_INFINITY })).toThrow(ValidationError);
  });

  it('score a campaign by weighted interactions', () => {
    // 10 views × 1 + 4 clicks × 3 + 2 engagements × 5 = 10 + 12 + 10 = 32
    expect(scoreOf({ view: 10, click: 4, engagement: 2 }, DEFAULT_WEIGHTS)).toBe(32);
    // With view=0.5, click=2: 10 × 0.5 + 4 × 2 + 2 × 5 = 5 + 8 + 10 = 23
    expect(scoreOf({ view: 10, click: 4, engagement: 2 }, parseWeights('view=0.5,click=2'))).toBe(23);
  });
});
