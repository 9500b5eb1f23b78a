import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startScriptedReceiver, sleep, type ScriptedReceiver } from '../support/scripted-receiver.js';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';

const headers = { authorization: 'Bearer recovery-token', 'content-type': 'application/json' };
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function server(env: Record<string, string>): Promise<ServerProcess> {
  const started = await startServerProcess(env);
  cleanups.push(async () => void (await started.kill('SIGKILL')));
  return started;
}
async function receiver(script: Parameters<typeof startScriptedReceiver>[0]): Promise<ScriptedReceiver> {
  const r = await startScriptedReceiver(script);
  cleanups.push(() => r.close());
  return r;
}
function environment(extra: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), 'intake-recovery-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return { DATABASE_URL: `sqlite:${join(dir, 'intake.db')}`, ADMIN_TOKEN: 'recovery-token', WEBHOOK_ALLOWED_HOSTS: '127.0.0.1', ...extra };
}
async function api<T = Record<string, unknown>>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: T }> {
  const response = await fetch(`${base}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: response.status, json: (await response.json()) as T };
}
async function setUp(base: string, url: string): Promise<string> {
  expect((await api(base, 'POST', '/api/applications', { name: 'Shop', app_id: 'shop' })).status).toBe(201);
  const rule = await api<{ rule_id: string }>(base, 'POST', '/api/routing-rules', {
    app_id: 'shop',
    rule_name: 'hooks',
    destination_type: 'webhook',
    destination_config: { url },
  });
  expect(rule.status).toBe(201);
  return rule.json.rule_id;
}
async function until<T>(probe: () => Promise<T>, accept: (value: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (accept(value)) return value;
    if (Date.now() > deadline) throw new Error(`condition not reached: ${JSON.stringify(value).slice(0, 400)}`);
    await sleep(50);
  }
}

/**
 * A server whose first webhook attempt is in flight to a receiver that never answers it (and answers
 * every later one). A minute between attempts, a two-minute lease: only the recovery at the next start
 * explains a quick retry.
 */
async function firstAttemptHanging() {
  const env = environment({ WEBHOOK_RETRY_SCHEDULE: '60,60' });
  const hooks = await receiver((_request, index) => (index === 0 ? 'hang' : 200));
  const first = await server(env);
  const ruleId = await setUp(first.url, hooks.url);
  expect((await api(first.url, 'POST', '/api/ingest/shop', { event_type: 'order', payload: { n: 1 } })).status).toBe(201);
  await hooks.waitFor((all) => all.length === 1);
  return { env, hooks, first, ruleId };
}

/** Once the receiver had the attempt again under the same id: the delivery's attempts, when it succeeded. */
async function attemptLogAfterRetry(base: string, hooks: ScriptedReceiver, ruleId: string): Promise<Array<[number, string]>> {
  expect(hooks.requests[1]?.webhookId).toBe(hooks.requests[0]?.webhookId);
  const [delivery] = (await api<{ items: Array<{ delivery_id: string }> }>(base, 'GET', `/api/routing/deliveries?rule_id=${ruleId}`)).json
    .items;
  const detail = await until(
    async () =>
      (
        await api<{ status: string; attempt_log: Array<{ attempt: number; outcome: string }> }>(
          base,
          'GET',
          `/api/routing/deliveries/${delivery?.delivery_id}`,
        )
      ).json,
    (d) => d.status === 'succeeded',
  );
  return detail.attempt_log.map((a) => [a.attempt, a.outcome]);
}

describe('delivery after a SIGKILL', () => {
  it('retries an attempt that was in flight right after the restart, and its log shows both attempts', async () => {
    const { env, hooks, first, ruleId } = await firstAttemptHanging();
    await first.kill('SIGKILL');

    const second = await server(env);
    const listeningAt = Date.now();
    // Far sooner than the next scheduled attempt (60 s) or the lease (120 s), even on a loaded machine.
    await hooks.waitFor((all) => all.length === 2, 45_000);
    expect(Date.now() - listeningAt).toBeLessThan(45_000);
    expect(await attemptLogAfterRetry(second.url, hooks, ruleId)).toEqual([
      [1, 'interrupted'],
      [2, 'delivered'],
    ]);
  }, 120_000);

  it('stops on SIGTERM without waiting for a receiver that hangs, and sends the attempt again at the next start', async () => {
    const { env, hooks, first, ruleId } = await firstAttemptHanging();
    const stopping = Date.now();
    expect(await first.kill('SIGTERM')).toBe(0);
    // Within a container's 10 s grace, not the attempt's 15 s timeout (a loaded machine given room).
    expect(Date.now() - stopping).toBeLessThan(9_000);

    const second = await server(env);
    await hooks.waitFor((all) => all.length === 2, 45_000);
    expect(await attemptLogAfterRetry(second.url, hooks, ruleId)).toEqual([
      [1, 'interrupted'],
      [2, 'delivered'],
    ]);
  }, 120_000);

  it('resumes a replay job after a SIGKILL without sending any event twice beyond the one in flight', async () => {
    const env = environment({ ROUTING_REPLAY_RATE: '25' });
    const hooks = await receiver(async () => {
      await sleep(10);
      return 200;
    });
    const first = await server(env);
    const ruleId = await setUp(first.url, hooks.url);
    const from = new Date().toISOString();
    const batch = await api(first.url, 'POST', '/api/ingest/shop/batch', {
      events: Array.from({ length: 60 }, (_, seq) => ({ event_type: 'order', payload: { seq } })),
    });
    expect(batch.status).toBe(200);
    await hooks.waitFor((all) => all.filter((r) => r.status === 200).length === 60);
    const to = new Date().toISOString();

    const started = await api<{ job_id: string }>(first.url, 'POST', `/api/routing-rules/${ruleId}/replay`, { from, to });
    expect(started.status).toBe(202);
    await hooks.waitFor((all) => all.length >= 60 + 20);
    await first.kill('SIGKILL');
    const sentBeforeKill = hooks.requests.length - 60;
    expect(sentBeforeKill).toBeLessThan(60);

    const second = await server(env);
    const job = await until(
      async () =>
        (await api<{ status: string; scheduled: number }>(second.url, 'GET', `/api/routing-rules/${ruleId}/replays/${started.json.job_id}`))
          .json,
      (j) => j.status === 'completed',
      30_000,
    );
    expect(job.scheduled).toBe(60);
    const replayed = hooks.requests.slice(60).map((r) => r.webhookId);
    const times = new Map<string, number>();
    for (const id of replayed) times.set(id, (times.get(id) ?? 0) + 1);
    expect(times.size).toBe(60);
    expect([...times.values()].filter((n) => n > 1).length).toBeLessThanOrEqual(1);
    expect(Math.max(...times.values())).toBeLessThanOrEqual(2);
  }, 120_000);
});
