/**
 * Group commit: appends that arrive while the event loop is busy are written together in one
 * transaction, then made durable by one shared sync, and only then acknowledged. The queue is
 * bounded so overload turns into a clear "retry later" instead of unbounded memory.
 */
export interface GroupCommitOptions<Request, Result> {
  /** Writes every request in one transaction; a per-request Error fails that request alone. */
  commit(requests: Request[]): Promise<Array<Result | Error>>;
  /** Makes everything committed so far durable; resolves when it is. */
  durable(): Promise<void>;
  readonly maxBatch: number;
  readonly maxQueued: number;
  overloaded(queued: number): Error;
  /** Observes each committed batch's size (metrics). */
  onBatch?(size: number): void;
  /** Whether a failed shared commit is worth trying request by request (not when the storage itself failed). */
  retryAlone?(error: unknown): boolean;
}

interface Pending<Request, Result> {
  readonly request: Request;
  resolve(result: Result): void;
  reject(error: unknown): void;
}

export interface GroupCommitter<Request, Result> {
  submit(request: Request): Promise<Result>;
  /** Appends accepted but not yet acknowledged. */
  readonly pending: number;
}

export function groupCommitter<Request, Result>(options: GroupCommitOptions<Request, Result>): GroupCommitter<Request, Result> {
  const queue: Pending<Request, Result>[] = [];
  let unsettled = 0;
  let scheduled = false;
  let committing = false;

  const schedule = () => {
    if (scheduled || committing || queue.length === 0) return;
    scheduled = true;
    // setImmediate lets every request already read from the sockets join this batch.
    setImmediate(() => void flush());
  };

  // An observer (the metrics) never fails a batch that is committed: a throw there once made the
  // batch count as failed and each request be committed again, alone.
  const observe = (size: number) => {
    try {
      options.onBatch?.(size);
    } catch {
      // nothing to undo, and nobody to tell but the metrics themselves
    }
  };

  const flush = async () => {
    scheduled = false;
    committing = true;
    const batch = queue.splice(0, options.maxBatch);
    let results: Array<Result | Error> | undefined;
    let failure: unknown;
    try {
      results = await options.commit(batch.map((p) => p.request));
    } catch (error) {
      failure = error;
    }
    if (results) observe(batch.length);
    if (failure !== undefined && batch.length > 1 && (options.retryAlone?.(failure) ?? true)) {
      // Whatever failed the shared transaction may be one request's doing: each request is tried
      // alone, so it fails only its own caller (a storage fault fails each of them anyway).
      failure = undefined;
      results = [];
      for (const pending of batch) {
        try {
          const [result] = await options.commit([pending.request]);
          results.push(result ?? new Error('no result for append'));
        } catch (error) {
          results.push(error instanceof Error ? error : new Error(String(error)));
        }
      }
    }
    committing = false;
    schedule();

    if (results) {
      try {
        await options.durable();
      } catch (error) {
        failure = error;
      }
    }
    batch.forEach((pending, i) => {
      const result = results?.[i];
      if (failure !== undefined || result === undefined) pending.reject(failure ?? new Error('no result for append'));
      else if (result instanceof Error) pending.reject(result);
      else pending.resolve(result);
      unsettled -= 1;
    });
  };

  return {
    submit(request) {
      if (unsettled >= options.maxQueued) return Promise.reject(options.overloaded(unsettled));
      unsettled += 1;
      return new Promise<Result>((resolve, reject) => {
        queue.push({ request, resolve, reject });
        schedule();
      });
    },
    get pending() {
      return unsettled;
    },
  };
}

/**
 * Coalesces fsync requests: a caller joins the next sync that starts after its call,
 * so one fsync covers every commit made while the previous one ran.
 */
export function coalescedSync(sync: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let next: Promise<void> | undefined;
  const request = (): Promise<void> => {
    if (!running) {
      running = sync().finally(() => {
        running = undefined;
      });
      return running;
    }
    next ??= running
      .catch(() => undefined)
      .then(() => {
        next = undefined;
        return request();
      });
    return next;
  };
  return request;
}
