import { pino, type Logger } from 'pino';

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'intake' },
    // Belt and braces: nothing logs headers today, but a secret must never reach a log if one does.
    redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.token', '*.key', '*.secret'], censor: '[redacted]' },
  });
}
