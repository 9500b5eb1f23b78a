import { pino, type Logger, type LoggerOptions } from 'pino';
import { logDestination } from './log-destination.js';

/** A JSON logger to stdout, or to stderr (fd 2) for commands whose stdout is their result. */
export function createLogger(level: string, fd: 1 | 2 = 1): Logger {
  const options: LoggerOptions = {
    level,
    base: { service: 'intake' },
    // Belt and braces: nothing logs headers today, but a secret must never reach a log if one does.
    redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.token', '*.key', '*.secret'], censor: '[redacted]' },
  };
  if (fd === 2) return pino(options, pino.destination({ fd: 2, sync: true }));
  // A log that cannot be written (a full disk) drops lines: it never stops or ends the server.
  const destination = logDestination(1);
  process.once('exit', () => destination.flushOnce());
  return pino(options, destination);
}
