import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Problem } from './problem.js';

// What Node's HTTP parser can refuse before Fastify sees a request (a Content-Length that does not
// match the body, malformed headers, a header section too large, a client too slow).
const BY_PARSER_CODE: Record<string, { status: number; code: string; detail: string }> = {
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, code: 'request.timeout', detail: 'the request was not received in time' },
  HPE_HEADER_OVERFLOW: { status: 431, code: 'request.headers-too-large', detail: 'the request headers are too large' },
  // llhttp raises these two for several framing faults (a second Content-Length, one beside
  // Transfer-Encoding, one that is not a number): the detail is the parser's own reason.
  HPE_INVALID_CONTENT_LENGTH: { status: 400, code: 'request.invalid', detail: 'the Content-Length header is invalid' },
  HPE_UNEXPECTED_CONTENT_LENGTH: { status: 400, code: 'request.invalid', detail: 'the Content-Length header is invalid' },
};
const FRAMING_CODES = new Set(['HPE_INVALID_CONTENT_LENGTH', 'HPE_UNEXPECTED_CONTENT_LENGTH']);

/**
 * Fastify's `clientErrorHandler`: the same problem+json as every other error, written straight to
 * the socket because there is no request to answer through.
 */
export function answerClientError(error: Error & { code?: string; reason?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const known = BY_PARSER_CODE[error.code ?? ''];
  const status = known?.status ?? 400;
  const code = known?.code ?? 'request.malformed-http';
  const problem: Problem = {
    type: `urn:intake:problem:${code}`,
    title: STATUS_CODES[status] ?? 'Bad request',
    status,
    detail:
      FRAMING_CODES.has(error.code ?? '') && typeof error.reason === 'string'
        ? `the request's framing is invalid: ${error.reason}`
        : (known?.detail ?? `the HTTP request could not be parsed (${error.code ?? 'client error'}); check Content-Length and headers`),
    instance: '',
    code,
  };
  const body = JSON.stringify(problem);
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/problem+json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}
