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

type Write = (fd: number, bytes: Buffer, done: (error: NodeJS.ErrnoException | null, written: number) => void) => void;

const writeToFd: Write = (fd, bytes, done) => writeAsync(fd, bytes, 0, bytes.length, null, (error, written) => done(error, written));

/**
 * Log lines written in order to a file descriptor, never throwing and never blocking: a line the file
 * refuses is dropped and counted. pino's default stream re-emits such an error, which ends the process,
 * and its exit flush retries a refused write for ever, so a full log disk froze the server with its
 * port open (no answer, no exit). A write that takes part of a line (a non-blocking pipe past its 4 KB
 * atomic size) is followed by the rest, so lines never come out cut or merged.
 */
export function logDestination(fd: number, write: Write = writeToFd): LogDestination {
  const queue: Buffer[] = [];
  let bytes = 0;
  let writing = false;
  let dropped = 0;

  const next = (): void => {
    const chunk = queue[0];
    if (chunk === undefined) {
      writing = false;
      return;
    }
    writing = true;
    write(fd, chunk, (error, written) => {
      // A pipe that is full for now (non-blocking stdout) takes the line a moment later.
      if (error?.code === 'EAGAIN') {
        setTimeout(next, RETRY_BUSY_MS).unref();
        return;
      }
      if (error) {
        queue.shift();
        bytes -= chunk.length;
        dropped += 1;
      } else if (written < chunk.length) {
        queue[0] = chunk.subarray(written);
        bytes -= written;
      } else {
        queue.shift();
        bytes -= chunk.length;
      }
      next();
    });
  };

  const destination: LogDestination = {
    write(line) {
      const chunk = Buffer.from(line);
      if (bytes + chunk.length > MAX_BUFFERED_LOG_BYTES) {
        dropped += 1;
        return;
      }
      queue.push(chunk);
      bytes += chunk.length;
      if (!writing) next();
    },
    get dropped() {
      return dropped;
    },
    flushOnce() {
      // The chunk being written asynchronously may be written twice; losing the tail would be worse.
      try {
        for (const chunk of queue) {
          let offset = 0;
          while (offset < chunk.length) offset += writeSync(fd, chunk, offset);
        }
      } catch {
        // The file refuses (or a pipe is full): what is left is dropped, and the process goes on ending.
      }
      queue.length = 0;
      bytes = 0;
    },
  };
  return destination;
}
