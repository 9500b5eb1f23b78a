import { describe, expect, it } from 'vitest';
import { laterStatus, statusesBefore } from './item-status.js';

describe('item status', () => {
  it('only moves forward', () => {
    expect(laterStatus('ingested', 'validated')).toBe('validated');
    expect(laterStatus('processed', 'validated')).toBe('processed');
    expect(laterStatus('invalid', 'ingested')).toBe('invalid');
  });

  it('names the statuses an item may leave for another', () => {
    expect(statusesBefore('ingested')).toEqual([]);
    expect(statusesBefore('validated')).toEqual(['ingested']);
    expect(statusesBefore('processed')).toEqual(['ingested', 'validated']);
    expect(statusesBefore('invalid')).toEqual(['ingested', 'validated']);
  });
});
