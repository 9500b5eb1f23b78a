import { UnavailableError, ValidationError } from '../errors.js';
import { envelopeMetadata, eventText } from '../event-store/serialized-event.js';
import type { AppendRequest, AppendResult, EventStore } from '../event-store/event-store.js';
import type { RecordedEvent } from '../events.js';
import { forwardingProcedures, type Procedures } from '../procedures.js';
import type { Call, CallsMessage, StorageMessage, WireAppend, WireAppendResult } from './protocol.js';
import { fromWire } from './wire-errors.js';

/** The reads the HTTP thread answers itself, from a read-only connection (WAL readers never wait on the writer). */
export type EventStoreReads = Pick<EventStore, 'readStream' | 'readStreams' | 'readAll' | 'headPosition'>;

/** The storage thread as this side talks to it: a Worker, or a MessagePort in tests. */
export interface StoragePort {
  postMessage(message: CallsMessage): void;
  on(event: 'message', listener: (message: StorageMessage) => void): unknown;
}

export interface StorageClient {
  /** Appends go to the storage thread; reads are local. */
  readonly store: EventStore;
  readonly procedures: Procedures;
  /** The storage thread is gone: every waiting call and every later one fails with `error`. */
  fail(error: Error): void;
  /**
   * What the storage thread has in hand while it is still answering (a reply within the last second),
   * or undefined: saturated, not stalled. Readiness tells the two apart by it.
   */
  saturation(): string | undefined;
}

/** A storage thread that answered within this long is working through its queue, not stalled. */
const ANSWERING_WITHIN_MS = 1000;

interface Waiting {
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

// Calls gathered before a message goes without waiting for the end of the tick.
const EAGER_FLUSH_CALLS = 16;

/** What the storage thread may have in hand at once, from this side; past it a call is refused (503). */
export interface StorageBudget {
  /** Calls (appends and procedures) awaiting their reply. */
  readonly maxCalls: number;
  /** The text they carry, in UTF-16 units: 400 batches of 770 KB at once ran the thread's heap out. */
  readonly maxChars: number;
  /**
   * Procedures that say how storage is doing, taking no arguments: readiness and metrics must tell the
   * truth when the storage thread is overloaded, so they go past the budget, one call of each at a time.
   */
  readonly reports?: readonly string[];
}

export const DEFAULT_STORAGE_BUDGET: StorageBudget = { maxCalls: 10_000, maxChars: 64 * 1024 * 1024 };

const textLength = (event: { readonly type: string; readonly data: string; readonly metadata: string }) =>
  event.type.length + event.data.length + event.metadata.length;

/** A call's weight: the text it carries (strings, keys), plus a little per value, walked without recursion. */
export function charsOf(value: unknown): number {
  let chars = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const current = stack.pop();
    chars += 8;
    if (typeof current === 'string') chars += current.length;
    else if (Array.isArray(current)) for (const element of current) stack.push(element);
    else if (typeof current === 'object' && current !== null) {
      for (const [key, field] of Object.entries(current)) {
        chars += key.length;
        stack.push(field);
      }
    }
  }
  return chars;
}

/**
 * The HTTP thread's side of the storage thread. Every append and procedure call made during one
 * tick goes over in one message; each caller is answered when its own reply comes back, so one
 * call's failure never fails another's.
 */
export function storageClient(worker: StoragePort, reads: EventStoreReads, budget: StorageBudget = DEFAULT_STORAGE_BUDGET): StorageClient {
  const waiting = new Map<number, Waiting>();
  let charsInHand = 0;
  const listeners = new Set<(head: number) => void>();
  let nextId = 1;
  let outbox: Call[] = [];
  let scheduled = false;
  let failed: Error | undefined;

  const flush = () => {
    const calls = outbox;
    if (calls.length === 0) return;
    outbox = [];
    try {
      worker.postMessage({ type: 'calls', calls });
    } catch {
      // One call's arguments could not be cloned: send each alone, so only that caller fails.
      for (const call of calls) {
        try {
          worker.postMessage({ type: 'calls', calls: [call] });
        } catch (error) {
          const caller = waiting.get(call.id);
          waiting.delete(call.id);
          caller?.reject(
            new ValidationError('storage.uncloneable', `the request cannot be handed to storage: ${(error as Error).message}`),
          );
        }
      }
    }
  };
  type Unsent = { kind: 'append'; request: WireAppend } | { kind: 'procedure'; name: string; args: readonly unknown[] };
  const send = (call: Unsent, withinBudget = true): Promise<unknown> =>
    new Promise((resolve, reject) => {
      if (failed) return reject(failed);
      // Refused here, before it is copied over: the storage thread takes whatever it is sent.
      // An append's events are text already: their lengths, without a walk.
      const chars = call.kind === 'append' ? call.request.events.reduce((sum, e) => sum + textLength(e), 0) : charsOf(call.args);
      if (withinBudget && (waiting.size >= budget.maxCalls || (charsInHand + chars > budget.maxChars && waiting.size > 0))) {
        return reject(
          new UnavailableError(
            'event-store.overloaded',
            `the storage thread has ${waiting.size} requests (${Math.round(charsInHand / 1_048_576)} MB) in hand; retry shortly`,
            1,
          ),
        );
      }
      charsInHand += chars;
      const id = nextId++;
      const settled = () => {
        charsInHand -= chars;
      };
      waiting.set(id, {
        resolve: (value) => (settled(), resolve(value)),
        reject: (error) => (settled(), reject(error)),
      });
      outbox.push({ ...call, id } as Call);
      // A full message goes at once: the storage thread commits it while this thread reads the
      // rest of the sockets, instead of the two threads taking turns a whole tick at a time.
      if (outbox.length >= EAGER_FLUSH_CALLS) return flush();
      if (!scheduled) {
        scheduled = true;
        setImmediate(() => {
          scheduled = false;
          flush();
        });
      }
    });

  const reports = new Set(budget.reports);
  // A report asked for again while one is on its way shares it: a flood of readiness probes adds one call.
  const reportsInFlight = new Map<string, Promise<unknown>>();
  const report = (name: string): Promise<unknown> => {
    const inFlight = reportsInFlight.get(name);
    if (inFlight) return inFlight;
    const sent = send({ kind: 'procedure', name, args: [] }, false).finally(() => reportsInFlight.delete(name));
    reportsInFlight.set(name, sent);
    return sent;
  };

  let lastReplyAt = Number.NEGATIVE_INFINITY;
  worker.on('message', (message: StorageMessage) => {
    if (message.type !== 'replies') return;
    lastReplyAt = performance.now();
    for (const reply of message.replies) {
      const caller = waiting.get(reply.id);
      if (!caller) continue;
      waiting.delete(reply.id);
      if (reply.ok) caller.resolve(reply.value);
      else caller.reject(fromWire(reply.error));
    }
    if (message.head !== undefined) for (const listener of listeners) listener(message.head);
  });

  const store: EventStore = {
    async append(request) {
      const wire = toWireAppend(request);
      const result = (await send({ kind: 'append', request: wire })) as WireAppendResult;
      return fromWireResult(request, result);
    },
    readStream: (streamId) => reads.readStream(streamId),
    readStreams: (streamIds) => reads.readStreams(streamIds),
    readAll: (options) => reads.readAll(options),
    headPosition: () => reads.headPosition(),
    transaction() {
      // A transaction's work is a closure, which cannot cross threads: such work is a procedure.
      return Promise.reject(new Error('transactions run in the storage thread: define the work as a procedure'));
    },
    onAppended(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      // The storage thread drains its own commits when it is told to stop.
    },
  };

  return {
    store,
    procedures: forwardingProcedures((name, args) => (reports.has(name) ? report(name) : send({ kind: 'procedure', name, args }))),
    saturation() {
      const sinceReply = Math.round(performance.now() - lastReplyAt);
      if (waiting.size === 0 || sinceReply > ANSWERING_WITHIN_MS) return undefined;
      return `the storage thread has ${waiting.size} requests in hand and answered one ${sinceReply} ms ago`;
    },
    fail(error) {
      failed = error;
      for (const caller of waiting.values()) caller.reject(error);
      waiting.clear();
    },
  };
}

/** Serialises on this thread, per request: data that cannot be serialised fails its own append only. */
function toWireAppend(request: AppendRequest): WireAppend {
  return {
    streamId: request.streamId,
    ...(request.expectedVersion === undefined ? {} : { expectedVersion: request.expectedVersion }),
    ...(request.source === undefined ? {} : { source: request.source }),
    events: request.events.map(eventText),
  };
}

function fromWireResult(request: AppendRequest, result: WireAppendResult): AppendResult {
  return {
    streamId: result.streamId,
    nextExpectedVersion: result.nextExpectedVersion,
    // Fields copied one by one: spreading an object that came through structured clone is slow.
    events: result.events.map((recorded, i): RecordedEvent => ({
      eventId: recorded.eventId,
      position: recorded.position,
      streamVersion: recorded.streamVersion,
      recordedAt: recorded.recordedAt,
      streamId: result.streamId,
      type: request.events[i]?.type ?? '',
      data: request.events[i]?.data ?? {},
      metadata: envelopeMetadata(request.events[i]?.metadata),
    })),
  };
}
