import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.js';
import { touchFromPublished } from './touch.js';

const published = {
  tracking_event_id: 't-1',
  partner_id: 'A',
  campaign_id: 'c1',
  visitor_id: 'v-1',
  interaction_type: 'click',
  source_url: 'https://a.example/',
  destination_url: 'https://b.example/',
  occurred_at: '2026-11-24T10:00:00.000Z',
  recorded_at: '2026-11-24T10:00:01.000Z',
};

describe('reading tracking_event.recorded.v1', () => {
  it('takes the fields attribution needs and ignores the others', () => {
    expect(touchFromPublished({ ...published, added_later: true }, { schema_version: 1 })).toEqual({
      trackingEventId: 't-1',
      visitor: { appId: null, id: 'v-1' },
      partnerId: 'A',
      campaignId: 'c1',
      interactionType: 'click',
      occurredAt: '2026-11-24T10:00:00.000Z',
    });
  });

  it('reads back an id stored before C1 control characters were refused', () => {
    expect(touchFromPublished({ ...published, visitor_id: 'v\u009b1' }, { schema_version: 1 }).visitor).toEqual({
      appId: null,
      id: 'v\u009b1',
    });
  });

  it('refuses a schema version it does not understand instead of misreading it', () => {
    expect(() => touchFromPublished(published, { schema_version: 2 })).toThrow(/schema_version 2/);
  });

  it('refuses an event missing what it needs, naming every field', () => {
    try {
      touchFromPublished({ tracking_event_id: 't-1', interaction_type: 'share' }, { schema_version: 1 });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).code).toBe('attribution.unreadable-event');
      expect((error as ValidationError).violations.map((v) => v.path)).toEqual([
        'visitor_id',
        'partner_id',
        'campaign_id',
        'interaction_type',
        'occurred_at',
      ]);
    }
  });
});
