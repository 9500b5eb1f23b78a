/**
 * Work that must run where the write connection lives: transactions that are more than an append,
 * and control of what runs there (subscribers, delivery workers). In one thread a procedure is the
 * function itself; with a storage thread, the HTTP thread holds a stub that sends its arguments
 * across and the storage thread runs the function registered under the same name.
 *
 * Both threads build every context the same way, so each `define` call is made on both sides with
 * the same name: the storage side's function runs, the HTTP side's is never called.
 */
export interface Procedures {
  define<Args extends unknown[], Result>(name: string, fn: (...args: Args) => Promise<Result>): (...args: Args) => Promise<Result>;
}

export interface LocalProcedures extends Procedures {
  /** Runs a registered procedure by name (the storage thread's side of a call). */
  call(name: string, args: readonly unknown[]): Promise<unknown>;
}

/** Procedures that run where they are defined, found by name for calls from another thread. */
export function localProcedures(): LocalProcedures {
  const registered = new Map<string, (...args: never[]) => Promise<unknown>>();
  return {
    define(name, fn) {
      if (registered.has(name)) throw new Error(`procedure "${name}" is defined twice`);
      registered.set(name, fn as unknown as (...args: never[]) => Promise<unknown>);
      return fn;
    },
    call(name, args) {
      const fn = registered.get(name);
      if (!fn) return Promise.reject(new Error(`no procedure named "${name}"`));
      return fn(...(args as never[]));
    },
  };
}

/** Stubs that forward every call to `send`, which runs the procedure elsewhere. */
export function forwardingProcedures(send: (name: string, args: readonly unknown[]) => Promise<unknown>): Procedures {
  return {
    define<Args extends unknown[], Result>(name: string) {
      return (...args: Args) => send(name, args) as Promise<Result>;
    },
  };
}
