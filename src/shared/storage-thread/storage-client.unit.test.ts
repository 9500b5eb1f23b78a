import { describe, expect, it } from 'vitest';
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
  return { port, answerAll };
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

  it('weighs a call by the text it carries', () => {
    expect(charsOf({ events: [{ type: 'T', data: 'abc' }] })).toBeGreaterThan(charsOf({ events: [] }));
    expect(charsOf(['x'.repeat(1000)])).toBeGreaterThanOrEqual(1000);
  });
});
