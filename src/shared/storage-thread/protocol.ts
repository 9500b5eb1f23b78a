import type { ExpectedVersion } from '../event-store/event-store.js';
import type { EventText } from '../event-store/serialized-event.js';
import type { WireError } from './wire-errors.js';

/** An append whose events were serialised by the sending thread. */
export interface WireAppend {
  readonly streamId: string;
  readonly expectedVersion?: ExpectedVersion;
  readonly source?: string;
  readonly events: readonly EventText[];
}

/** What the storage thread tells of each appended event: the sender keeps the data it sent. */
export interface WireAppendResult {
  readonly streamId: string;
  readonly nextExpectedVersion: number;
  readonly events: ReadonlyArray<{
    readonly eventId: string;
    readonly position: number;
    readonly streamVersion: number;
    readonly recordedAt: string;
  }>;
}

export type Call =
  | { readonly id: number; readonly kind: 'append'; readonly request: WireAppend }
  | { readonly id: number; readonly kind: 'procedure'; readonly name: string; readonly args: readonly unknown[] };

export type Reply =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: WireError };

/** HTTP thread → storage thread: every call made during one tick of the event loop. */
export interface CallsMessage {
  readonly type: 'calls';
  readonly calls: readonly Call[];
}

/** Storage thread → HTTP thread. */
export type StorageMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'replies'; readonly replies: readonly Reply[]; readonly head?: number }
  | { readonly type: 'failed'; readonly error: WireError };
