import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { adminCall, startTestIntake, type TestIntake } from '../../test/support/embedded-intake.js';
import { startWebhookReceiver, type ReceivedRequest, type WebhookReceiver } from '../../test/support/webhook-receiver.js';
import { verifySignature } from './adapters/webhook/standard-webhooks.js';
import { PREVIOUS_SECRET_HONOURED_MS } from './application/manage-rules.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Real time, moved on by `skew`: deliveries and retries run as usual, a day passes at once. */
let skew = 0;
const clock = { now: () => new Date(Date.now() + skew) };

async function start(dir: string): Promise<TestIntake> {
  const intake = await startTestIntake({ WEBHOOK_ALLOWED_HOSTS: '127.0.0.1' }, { clock }, dir);
  cleanups.push(() => intake.dispose());
  return intake;
}

async function receiver(): Promise<WebhookReceiver> {
  const hooks = await startWebhookReceiver();
  cleanups.push(() => hooks.close());
  return hooks;
}

/** Which of the secrets each signature of the request verifies with, in the header's order. */
const signers = (request: ReceivedRequest | undefined, secrets: Record<string, string>) =>
  String(request?.headers['webhook-signature'])
    .split(' ')
    .map(
      (signature) =>
        Object.entries(secrets).find(([, secret]) =>
          verifySignature(
            secret,
            String(request?.headers['webhook-id']),
            Number(request?.headers['webhook-timestamp']),
            request?.body ?? '',
            signature,
          ),
        )?.[0],
    );

describe('rotating a webhook signing secret', () => {
  it('signs with the new and the old secret for a day, across a restart, then with the new one only', async () => {
    skew = 0;
    const dir = mkdtempSync(join(tmpdir(), 'intake-rotation-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const hooks = await receiver();
    let intake = await start(dir);
    expect((await adminCall(intake, 'POST', '/api/applications', { name: 'Shop', app_id: 'shop' })).statusCode).toBe(201);
    const created = await adminCall(intake, 'POST', '/api/routing-rules', {
      app_id: 'shop',
      rule_name: 'orders',
      destination_type: 'webhook',
      destination_config: { url: hooks.url },
    });
    const { rule_id: ruleId, signing_secret: old } = created.json() as { rule_id: string; signing_secret: string };
    const rotated = await adminCall(intake, 'POST', `/api/routing-rules/${ruleId}/rotate-secret`);
    const renewed = rotated.json().signing_secret as string;
    const ingest = async () =>
      expect((await adminCall(intake, 'POST', '/api/ingest/shop', { event_type: 'order', payload: {} })).statusCode).toBe(201);

    await ingest();
    expect(signers((await hooks.waitFor(1))[0], { renewed, old })).toEqual(['renewed', 'old']);

    // Kept in the database: a restart still signs with both.
    await intake.dispose();
    cleanups.pop();
    intake = await start(dir);
    await ingest();
    expect(signers((await hooks.waitFor(2))[1], { renewed, old })).toEqual(['renewed', 'old']);

    skew = PREVIOUS_SECRET_HONOURED_MS + 1000;
    await ingest();
    expect(signers((await hooks.waitFor(3))[2], { renewed, old })).toEqual(['renewed']);
  }, 30_000);
});
