import { describe, expect, it } from 'vitest';
import { loggableUrl } from './loggable-url.js';

describe('loggableUrl', () => {
  it('replaces credentials in the query string and keeps the rest', () => {
    expect(loggableUrl('/beacon/v1/batch?writeKey=wk_secret&x=1', {})).toBe('/beacon/v1/batch?writeKey=%5Bredacted%5D&x=1');
    expect(loggableUrl('/v1/batch?token=a&token=b&api_key=c', {})).not.toMatch(/=(a|b|c)(&|$)/);
    expect(loggableUrl('/ingest/all?limit=5', {})).toBe('/ingest/all?limit=5');
  });

  it('replaces a bearer token sent as access_token or auth, and a key or generated admin token under any name', () => {
    const logged = loggableUrl('/api/applications?access_token=chosen-admin-token&auth=a1&Authorization=b2&limit=5', {});
    expect(logged).toBe('/api/applications?access_token=%5Bredacted%5D&auth=%5Bredacted%5D&Authorization=%5Bredacted%5D&limit=5');
    const key = 'wk_d6f5305cfb9112c0_X0YkDeS1AVDwRsJnevg_C5j_Q5OjuCppJ';
    expect(loggableUrl(`/v1/projects/x/settings?k=${key}&x=intk_admin_abc`, {})).toBe(
      '/v1/projects/x/settings?k=%5Bredacted%5D&x=%5Bredacted%5D',
    );
  });

  it('replaces a write key that is part of the path', () => {
    expect(loggableUrl('/v1/projects/wk_secret/settings', { writeKey: 'wk_secret' })).toBe('/v1/projects/[redacted]/settings');
    expect(loggableUrl('/query/p1', { id: 'p1' })).toBe('/query/p1');
    // No route matched, so no parameter names it: its shape does.
    const key = 'wk_d6f5305cfb9112c0_X0YkDeS1AVDwRsJnevg_C5j_Q5OjuCppJ';
    expect(loggableUrl(`/v1/projects/${key}/settings/`, {})).toBe('/v1/projects/[redacted]/settings/');
    expect(loggableUrl(`/v1/projects/${encodeURIComponent(key)}`, undefined)).toBe('/v1/projects/[redacted]');
  });
});
