import { describe, expect, it } from 'vitest';
import { ConflictError, ValidationError } from '../../shared/errors.js';
import {
  decideRecord,
  evolve,
  initialState,
  trackingEventFromCommand,
  trackingStreamId,
  type RecordTrackingEventCommand,
} from './tracking-event.js';

const receivedAt = new Date('2026-11-24T10:00:00.000Z');
const command = (overrides: Partial<Record<keyof RecordTrackingEventCommand, unknown>> = {}): RecordTrackingEventCommand => ({
  partnerId: 'partner123',
  campaignId: 'spring-sale',
  visitorId: 'v-1',
  interactionType: 'click',
  sourceUrl: 'https://blog.example.com/post?utm_source=x',
  destinationUrl: 'http://shop.example.com/',
  ...overrides,
});

/** The violations a command is refused with, as `path: message` lines. */
function violationsOf(overrides: Partial<Record<keyof RecordTrackingEventCommand, unknown>>): string[] {
  try {
    trackingEventFromCommand(command(overrides), 'id-1', receivedAt);
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).code).toBe('tracking.invalid-event');
    return (error as ValidationError).violations.map((v) => `${v.path}: ${v.message}`);
  }
  return [];
}

describe('TrackingEvent', () => {
  it('given no event, recording it records TrackingEventRecorded with every field', () => {
    const event = trackingEventFromCommand(command({ occurredAt: '2026-11-24T11:00:00+02:00' }), 'id-1', receivedAt);
    expect(decideRecord(event, initialState)).toEqual([
      {
        type: 'TrackingEventRecorded',
        data: {
          tracking_event_id: 'id-1',
          partner_id: 'partner123',
          campaign_id: 'spring-sale',
          visitor_id: 'v-1',
          interaction_type: 'click',
          source_url: 'https://blog.example.com/post?utm_source=x',
          destination_url: 'http://shop.example.com/',
          // Normalised to UTC so that instants compare as text.
          occurred_at: '2026-11-24T09:00:00.000Z',
          recorded_at: '2026-11-24T10:00:00.000Z',
        },
      },
    ]);
    expect(trackingStreamId('id-1')).toBe('tracking-id-1');
  });

  it('given a recorded event, recording it again is a conflict', () => {
    const event = trackingEventFromCommand(command(), 'id-1', receivedAt);
    const state = decideRecord(event, initialState).reduce(evolve, initialState);
    expect(state).toEqual({ status: 'recorded', event });
    expect(() => decideRecord(event, state)).toThrow(ConflictError);
  });

  it('takes the time it was received as occurred_at when the client gives none', () => {
    expect(trackingEventFromCommand(command(), 'id-1', receivedAt).occurredAt).toBe('2026-11-24T10:00:00.000Z');
  });

  it.each(['view', 'engagement'])('accepts the %s interaction type', (interactionType) => {
    expect(trackingEventFromCommand(command({ interactionType }), 'id-1', receivedAt).interactionType).toBe(interactionType);
  });

  it('accepts a URL of exactly 2048 characters and an id of exactly 255', () => {
    const url = `https://example.com/${'a'.repeat(2048 - 'https://example.com/'.length)}`;
    expect(url).toHaveLength(2048);
    expect(() => trackingEventFromCommand(command({ sourceUrl: url, visitorId: 'v'.repeat(255) }), 'id-1', receivedAt)).not.toThrow();
  });

  it('lists every invalid field at once', () => {
    expect(
      violationsOf({
        partnerId: undefined,
        campaignId: 'c'.repeat(256),
        visitorId: '   ',
        interactionType: 'purchase',
        sourceUrl: '/relative/path',
        destinationUrl: 'javascript:alert(1)',
        occurredAt: 'yesterday',
      }),
    ).toEqual([
      'partner_id: is required',
      'campaign_id: must be at most 255 characters',
      'visitor_id: must not be empty',
      'interaction_type: must be one of click, view, engagement',
      'source_url: must be an absolute http or https URL',
      'destination_url: must be an absolute http or https URL',
      'occurred_at: must be an RFC 3339 date-time such as 2026-11-24T10:00:00Z',
    ]);
  });

  it.each([
    ['a numeric id', { partnerId: 42 }, 'partner_id: must be a string'],
    ['an id with a control character', { visitorId: 'v\u0000' }, 'visitor_id: must not contain control characters'],
    // C1 too: U+009B is a terminal's escape (CSI) in one byte, U+0085 a line break.
    ['an id with a C1 control character', { partnerId: 'p\u009b31m' }, 'partner_id: must not contain control characters'],
    ['an id with a next-line character', { campaignId: 'c\u0085' }, 'campaign_id: must not contain control characters'],
    ['a missing interaction type', { interactionType: undefined }, 'interaction_type: is required'],
    ['an interaction type in capitals', { interactionType: 'CLICK' }, 'interaction_type: must be one of click, view, engagement'],
    ['a data: URL', { sourceUrl: 'data:text/html,<script>1</script>' }, 'source_url: must be an absolute http or https URL'],
    ['an ftp URL', { destinationUrl: 'ftp://example.com/file' }, 'destination_url: must be an absolute http or https URL'],
    ['a scheme-relative URL', { destinationUrl: '//example.com/' }, 'destination_url: must be an absolute http or https URL'],
    [
      'a URL with an empty host, which parsing would fill in',
      { sourceUrl: 'https:///x' },
      'source_url: must be an absolute http or https URL',
    ],
    ['a URL with a space', { sourceUrl: 'https://example.com/a b' }, 'source_url: must not contain whitespace or control characters'],
    ['a URL with credentials', { sourceUrl: 'https://user:secret@example.com/' }, 'source_url: must not contain credentials'],
    ['a URL that is not text', { sourceUrl: { href: 'https://example.com' } }, 'source_url: must be a string'],
    ['an overlong URL', { destinationUrl: `https://example.com/${'a'.repeat(2030)}` }, 'destination_url: must be at most 2048 characters'],
    [
      'a date without a time zone',
      { occurredAt: '2026-11-24T10:00:00' },
      'occurred_at: must be an RFC 3339 date-time such as 2026-11-24T10:00:00Z',
    ],
    [
      'a day that does not exist',
      { occurredAt: '2026-02-30T10:00:00Z' },
      'occurred_at: must be an RFC 3339 date-time such as 2026-11-24T10:00:00Z',
    ],
    ['an epoch number', { occurredAt: 1764000000000 }, 'occurred_at: must be an RFC 3339 date-time string'],
    ['a time before 1970', { occurredAt: '1969-12-31T23:59:59Z' }, 'occurred_at: must not be before 1970'],
    ['a time an hour ahead', { occurredAt: '2026-11-24T11:00:00Z' }, 'occurred_at: must not be in the future'],
  ])('refuses %s', (_name, overrides, violation) => {
    expect(violationsOf(overrides)).toEqual([violation]);
  });

  it('tolerates a client clock a few minutes ahead', () => {
    expect(trackingEventFromCommand(command({ occurredAt: '2026-11-24T10:04:00Z' }), 'id-1', receivedAt).occurredAt).toBe(
      '2026-11-24T10:04:00.000Z',
    );
  });
});
