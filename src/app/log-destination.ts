import { writeSync, write as writeAsync } from 'node:fs';

/** What the log may hold in memory while its file cannot take it (a full disk, a slow pipe): then lines are dropped. */
export const MAX_BUFFERED_LOG_BYTES = 16 * 1024 * 1024;
const RETRY_BUSY_MS = 10;

export interface LogDestination {
  write(line: string): void;
  /** Lines given up on: the file refused them (ENOSPC, EIO) or the buffer was full. */
  readonly dropped: number;
  /** One synchronous attempt at what is still buffered, giving up at the first refusal. */
  flushOnce(): void;
}

type Write = (fd: number, text: string, done: (error: NodeJS.ErrnoException | null) => void) => void;

/**
 * Log lines written in order to a file descriptor, never throwing and never blocking: a line the file
 * refuses is dropped and counted. pino's default stream re-emits such an error, which ends the process,
 * and its exit flush retries a refused write for ever, so a full log disk froze the server with its
 * port open (no answer, no exit).
 */
export function logDestination(
  fd: number,
  write: Write = (target, text, done) => writeAsync(target, text, (error) => done(error)),
): LogDestination {
  const queue: string[] = [];
  let bytes = 0;
  let writing = false;
  let dropped = 0;

  const next = (): void => {
    const line = queue[0];
    if (line === undefined) {
      writing = false;
      return;
    }
    writing = true;
    write(fd, line, (error) => {
      // A pipe that is full for now (non-blocking stdout) takes the line a moment later.
      if (error?.code === 'EAGAIN') {
        setTimeout(next, RETRY_BUSY_MS).unref();
        return;
      }
      queue.shift();
      bytes -= line.length;
      if (error) dropped += 1;
      next();
    });
  };

  const destination: LogDestination = {
    write(line) {
      if (bytes + line.length > MAX_BUFFERED_LOG_BYTES) {
        dropped += 1;
        return;
      }
      queue.push(line);
      bytes += line.length;
      if (!writing) next();
    },
    get dropped() {
      return dropped;
    },
    flushOnce() {
      // The line being written asynchronously may be written twice; losing the tail would be worse.
      try {
        for (const line of queue) writeSync(fd, line);
      } catch {
        // The file refuses: what is left is dropped, and the process goes on ending.
      }
      queue.length = 0;
      bytes = 0;
    },
  };
  return destination;
}
