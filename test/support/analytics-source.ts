import type { Intake } from '../../src/app/embedded.js';
import { auth } from './embedded-intake.js';

/** Creates an application and one write key for it; answers the key's secret and id. */
export async function createSource(intake: Pick<Intake, 'app'>, appId: string): Promise<{ writeKey: string; keyId: string }> {
  const created = await intake.app.inject({
    method: 'POST',
    url: '/api/applications',
    headers: auth,
    payload: { app_id: appId, name: appId },
  });
  if (created.statusCode !== 201) throw new Error(`application answered ${created.statusCode}: ${created.body}`);
  const key = await intake.app.inject({ method: 'POST', url: `/api/applications/${appId}/keys`, headers: auth, payload: { name: 'sdk' } });
  if (key.statusCode !== 201) throw new Error(`key answered ${key.statusCode}: ${key.body}`);
  const body = key.json() as { key: string; key_id: string };
  return { writeKey: body.key, keyId: body.key_id };
}

export const basic = (writeKey: string) => ({ authorization: `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}` });

export interface StoredItem {
  readonly id: string;
  readonly event_type: string;
  readonly payload: Record<string, unknown>;
}

/** Every item stored for the application (ingestion's own view, committed with the append), oldest first. */
export async function eventsOf(intake: Pick<Intake, 'app'>, appId: string): Promise<StoredItem[]> {
  const response = await intake.app.inject({
    method: 'GET',
    url: `/ingest/partner/${encodeURIComponent(appId)}?limit=1000`,
    headers: auth,
  });
  if (response.statusCode !== 200) throw new Error(`events answered ${response.statusCode}: ${response.body}`);
  return response.json().items;
}
