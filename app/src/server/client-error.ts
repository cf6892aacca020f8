import type { Duplex } from 'node:stream';

/** Node's parser errors by the status that answers them (RFC 9110, RFC 6585). */
const STATUS_OF: Record<string, string> = {
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
};

/**
 * Answers a request Node's HTTP parser refused (an oversized header, a bare LF, CL with TE, a
 * request that took too long) with its status and closes, as the Node docs' clientError example
 * does, instead of dropping the socket without a word. A socket already written to, or gone,
 * is only destroyed.
 */
export function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  const status = STATUS_OF[error.code ?? ''] ?? '400 Bad Request';
  const written = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
  if (error.code === 'ECONNRESET' || written || !socket.writable) return void socket.destroy();
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
