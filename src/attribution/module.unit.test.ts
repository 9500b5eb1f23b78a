import { describe, expect, it } from 'vitest';
import { attributionOptionsFromEnv } from './module.js';

describe('attribution options from the environment', () => {
  it('are empty when nothing is set, so the defaults apply', () => {
    expect(attributionOptionsFromEnv({})).toEqual({});
    expect(attributionOptionsFromEnv({ ATTRIBUTION_WEIGHTS: ' ', ATTRIBUTION_LOOKBACK_DAYS: '' })).toEqual({});
  });

  it('read ATTRIBUTION_WEIGHTS and ATTRIBUTION_LOOKBACK_DAYS', () => {
    expect(attributionOptionsFromEnv({ ATTRIBUTION_WEIGHTS: 'view=1,click=3,engagement=8', ATTRIBUTION_LOOKBACK_DAYS: '7' })).toEqual({
      weights: { view: 1, click: 3, engagement: 8 },
      lookbackDays: 7,
    });
  });

  it('stop the start on a malformed value, naming the variable', () => {
    expect(() => attributionOptionsFromEnv({ ATTRIBUTION_WEIGHTS: 'clicks=3' })).toThrow(
      /^ATTRIBUTION_WEIGHTS: .*clicks is not an interaction type/,
    );
    expect(() => attributionOptionsFromEnv({ ATTRIBUTION_LOOKBACK_DAYS: 'a month' })).toThrow(/^ATTRIBUTION_LOOKBACK_DAYS: /);
    for (const loose of ['0x10', '1e1', '7.0', '-1', '30d'])
      expect(() => attributionOptionsFromEnv({ ATTRIBUTION_LOOKBACK_DAYS: loose }), loose).toThrow(
        // The value as set, not NaN.
        new RegExp(`^ATTRIBUTION_LOOKBACK_DAYS: .*\\(got ${JSON.stringify(loose)}\\)$`),
      );
  });
});
