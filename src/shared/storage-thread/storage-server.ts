import type { MessagePort } from 'node:worker_threads';
import type { AppendResult, EventStore } from '../event-store/event-store.js';
import { fromEventText } from '../event-store/serialized-event.js';
import type { LocalProcedures } from '../procedures.js';
import type { CallsMessage, Reply, StorageMessage, WireAppend, WireAppendResult } from './protocol.js';
import { toWire } from './wire-errors.js';

export interface StorageServerOptions {
  readonly port: MessagePort;
  readonly store: EventStore;
  readonly procedures: LocalProcedures;
}

/**
 * The storage thread's side: appends go to the store's group commit together (a whole tick of
 * requests arrives in one message), procedures run by name, and replies go back once per tick.
 */
export function serveStorage({ port, store, procedures }: StorageServerOptions): { close(): void } {
  let replies: Reply[] = [];
  let head: number | undefined;
  let scheduled = false;

  const post = (message: StorageMessage) => port.postMessage(message);
  const flush = () => {
    scheduled = false;
    const batch = replies;
    replies = [];
    post({ type: 'replies', replies: batch, ...(head === undefined ? {} : { head }) });
    head = undefined;
  };
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(flush);
  };
  const reply = (id: number, outcome: Promise<unknown>) =>
    outcome.then(
      (value) => {
        replies.push({ id, ok: true, value });
        schedule();
      },
      (error: unknown) => {
        replies.push({ id, ok: false, error: toWire(error) });
        schedule();
      },
    );

  const stopListening = store.onAppended((position) => {
    head = Math.max(head ?? 0, position);
    schedule();
  });
  const onMessage = (message: CallsMessage) => {
    for (const call of message.calls) {
      if (call.kind === 'append') void reply(call.id, store.append(fromWireAppend(call.request)).then(toWireResult));
      else
        void reply(
          call.id,
          Promise.resolve().then(() => procedures.call(call.name, call.args)),
        );
    }
  };
  port.on('message', onMessage);
  post({ type: 'ready' });
  return {
    close() {
      stopListening();
      port.off('message', onMessage);
    },
  };
}

function fromWireAppend(request: WireAppend) {
  return {
    streamId: request.streamId,
    ...(request.expectedVersion === undefined ? {} : { expectedVersion: request.expectedVersion }),
    ...(request.source === undefined ? {} : { source: request.source }),
    events: request.events.map(fromEventText),
  };
}

function toWireResult(result: AppendResult): WireAppendResult {
  return {
    streamId: result.streamId,
    nextExpectedVersion: result.nextExpectedVersion,
    events: result.events.map((e) => ({
      eventId: e.eventId,
      position: e.position,
      streamVersion: e.streamVersion,
      recordedAt: e.recordedAt,
    })),
  };
}
