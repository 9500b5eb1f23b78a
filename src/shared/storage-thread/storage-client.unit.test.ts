import { describe, expect, it, vi } from 'vitest';
import type { CallsMessage, StorageMessage } from './protocol.js';
import { charsOf, storageClient, type EventStoreReads, type StoragePort } from './storage-client.js';

/** A storage thread that answers only when told, as one busy with a burst. */
function heldPort() {
  const sent: CallsMessage[] = [];
  let deliver: (message: StorageMessage) => void = () => {};
  const port: StoragePort = {
    postMessage: (message) => void sent.push(message),
    on: (_event, listener) => (deliver = listener),
  };
  const answerAll = () =>
    deliver({ type: 'replies', replies: sent.splice(0).flatMap((m) => m.calls.map((call) => ({ id: call.id, ok: true, value: 'done' }))) });
  const sentCalls = () => sent.flatMap((m) => m.calls) as Array<{ name?: string }>;
  return { port, answerAll, sentCalls };
}

const reads = {} as EventStoreReads;
const flushed = () => new Promise((resolve) => setImmediate(resolve));

describe('the storage client', () => {
  it('refuses a call with 503 while the storage thread has its budget of calls or text in hand, and takes calls again once it answers', async () => {
    const { port, answerAll } = heldPort();
    const client = storageClient(port, reads, { maxCalls: 3, maxChars: 1_000_000 });
    const commit = client.procedures.define('ingestion.commit', async (_entries: string[]) => 'done');
    const batch = ['x'.repeat(400_000)];
    const first = commit(batch);
    const second = commit(batch);
    // A third batch would bring the text in hand past the budget.
    await expect(commit(batch)).rejects.toMatchObject({
      code: 'event-store.overloaded',
      retryAfterSeconds: 1,
    });
    const small = commit(['y']);
    await expect(commit(['z'])).rejects.toMatchObject({ code: 'event-store.overloaded' });
    await flushed();
    answerAll();
    await expect(Promise.all([first, second, small])).resolves.toEqual(['done', 'done', 'done']);
    const later = commit(batch);
    await flushed();
    answerAll();
    await expect(later).resolves.toBe('done');
  });

  it('answers how storage is doing past the budget, one call of each report at a time', async () => {
    const { port, answerAll, sentCalls } = heldPort();
    const client = storageClient(port, reads, { maxCalls: 1, maxChars: 1_000_000, reports: ['storage.health'] });
    const commit = client.procedures.define('ingestion.commit', async () => 'done');
    const health = client.procedures.define('storage.health', async () => 'done');
    const held = commit();
    await expect(commit()).rejects.toMatchObject({ code: 'event-store.overloaded' });
    const probes = [health(), health(), health()];
    await flushed();
    expect(sentCalls().map((call) => call.name)).toEqual(['ingestion.commit', 'storage.health']);
    answerAll();
    await expect(Promise.all([held, ...probes])).resolves.toEqual(['done', 'done', 'done', 'done']);
  });

  it('says it is saturated while it has calls in hand and answered within the last second, and not once it stops answering', async () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    try {
      const { port, answerAll } = heldPort();
      const client = storageClient(port, reads, { maxCalls: 10, maxChars: 1_000_000 });
      const commit = client.procedures.define('ingestion.commit', async () => 'done');
      const first = commit();
      await flushed();
      expect(client.saturation()).toBeUndefined(); // never answered: stalled as far as anyone knows
      answerAll();
      await first;
      expect(client.saturation()).toBeUndefined(); // nothing in hand
      void commit();
      await flushed();
      expect(client.saturation()).toMatch(/1 requests in hand and answered one \d+ ms ago/);
      vi.advanceTimersByTime(1500);
      expect(client.saturation()).toBeUndefined();
    } finally {
      vi.useRealTimers();
    }
  });

  it('weighs a call by the text it carries', () => {
    expect(charsOf({ events: [{ type: 'T', data: 'abc' }] })).toBeGreaterThan(charsOf({ events: [] }));
    expect(charsOf(['x'.repeat(1000)])).toBeGreaterThanOrEqual(1000);
  });
});
