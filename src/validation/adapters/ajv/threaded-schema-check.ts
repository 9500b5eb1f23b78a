import type { Worker } from 'node:worker_threads';
import { UnavailableError, ValidationError, type Violation } from '../../../shared/errors.js';
import { startWorker } from '../../../shared/threads/start-worker.js';
import type { SchemaCheck } from '../../application/ports.js';
import type { SchemaDocument } from '../../domain/schema-registry.js';

export type CheckReply =
  | { readonly id: number; readonly outcome: 'valid' }
  | {
      readonly id: number;
      readonly outcome: 'invalid';
      readonly code: string;
      readonly message: string;
      readonly violations: readonly Violation[];
    }
  | { readonly id: number; readonly outcome: 'failed'; readonly message: string };

/**
 * How long compiling a schema being saved may take. The largest schema accepted (64 KB) compiles in
 * well under a second on a quiet machine; past this the thread is stopped and the schema refused.
 */
export const CHECK_DEADLINE_MS = 10_000;

/**
 * Checks schemas being saved on a thread of their own: compiling one can take a second, and the
 * thread that serves HTTP would serve nothing meanwhile. One thread, started at the first save and
 * kept (unreferenced) for the next; checks run one after the other. A check past its deadline stops
 * the thread, which the next check starts again.
 */
export function threadedSchemaCheck({ deadlineMs = CHECK_DEADLINE_MS } = {}): SchemaCheck & { close(): Promise<void> } {
  /** The thread, and the checks sent to it: a thread that ends fails its own checks, not the next thread's. */
  let thread: { readonly worker: Worker; readonly online: Promise<void>; readonly pending: Map<number, Settle> } | undefined;
  let lastId = 0;
  let queue: Promise<unknown> = Promise.resolve();

  const threadNow = () => {
    if (thread) return thread;
    const worker = startWorker(import.meta.url, 'schema-check-thread');
    worker.unref();
    const pending = new Map<number, Settle>();
    let ready = () => {};
    const online = new Promise<void>((resolve) => (ready = resolve));
    worker.on('message', (reply: CheckReply | 'ready') => {
      if (reply === 'ready') return ready();
      pending.get(reply.id)?.(reply);
      pending.delete(reply.id);
    });
    const lost = (message: string) => {
      if (thread?.worker === worker) thread = undefined;
      for (const [id, settle] of pending) settle({ id, outcome: 'failed', message });
      pending.clear();
    };
    worker.on('error', (error) => lost(`the schema check thread failed: ${error.message}`));
    worker.on('exit', (code) => lost(`the schema check thread stopped (exit code ${code})`));
    thread = { worker, online, pending };
    return thread;
  };

  const checkNow = async (schema: SchemaDocument): Promise<void> => {
    const id = ++lastId;
    const current = threadNow();
    let timer: NodeJS.Timeout | undefined;
    const reply = await new Promise<CheckReply>((settle) => {
      current.pending.set(id, settle);
      current.worker.postMessage({ id, schema });
      // The deadline is the compile's: starting the thread and loading ajv are not counted.
      void current.online.then(() => {
        if (!current.pending.has(id)) return;
        timer = setTimeout(() => {
          current.pending.delete(id);
          if (thread === current) thread = undefined;
          // Stopped before the next check begins: it would queue behind this compile on the same thread.
          void current.worker
            .terminate()
            .finally(() =>
              settle({ id, outcome: 'invalid', code: 'validation.invalid-schema', message: tooSlow(deadlineMs), violations: [] }),
            );
        }, deadlineMs);
      });
    }).finally(() => clearTimeout(timer));
    if (reply.outcome === 'valid') return;
    // The thread itself failed (out of memory, say): nothing is wrong with the schema, and a retry starts another.
    if (reply.outcome === 'failed')
      throw new UnavailableError('validation.check-unavailable', `the schema could not be checked: ${reply.message}; retry`);
    const violations = reply.violations.length > 0 ? reply.violations : [{ path: 'schema', message: reply.message }];
    throw new ValidationError(reply.code, reply.message, violations);
  };

  const check = (schema: SchemaDocument): Promise<void> => {
    const turn = queue.then(() => checkNow(schema));
    queue = turn.catch(() => undefined);
    return turn;
  };
  return Object.assign(check, {
    async close() {
      const running = thread;
      thread = undefined;
      await running?.worker.terminate();
    },
  });
}

type Settle = (reply: CheckReply) => void;

const tooSlow = (deadlineMs: number) => `schema cannot be compiled: it took more than ${deadlineMs / 1000} s; simplify or split it`;
