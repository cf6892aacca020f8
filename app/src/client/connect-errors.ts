/**
 * Why a handshake failed, precisely enough to tell whose limit it was:
 * - the target said no: `refused`, `reset`, `http_<status>`, `tls`;
 * - it did not answer: `connect_timeout` (the kernel gave up on the TCP handshake),
 *   `handshake_timeout` (ws's connectTimeoutMs passed);
 * - this machine ran out: `eaddrnotavail` (no free ephemeral port for that source address and
 *   destination), `emfile` (the process's open-file limit), `enfile` (the system's),
 *   `eaddrinuse`, `enomem`, `enobufs`;
 * - `closed_before_open`: the connection closed mid-handshake with no error (nginx drops a
 *   connection it has no worker_connections for this way: see its error log);
 * - `other`, with nothing more known.
 * A handshake the client itself cut off because the run ended is `UNFINISHED`: counted apart
 * (connections.unfinished), never as an error, since the target had no say in it.
 */
export const UNFINISHED = 'unfinished';

const LOCAL_ERRNOS = ['EADDRNOTAVAIL', 'EMFILE', 'ENFILE', 'EADDRINUSE', 'ENOMEM', 'ENOBUFS'];

export function classifyHandshakeError(error: Error & { code?: string; library?: string }): string {
  const code = error.code ?? '';
  const message = error.message ?? '';
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ECONNRESET' || code === 'EPIPE' || /socket hang up/.test(message)) return 'reset';
  if (code === 'ETIMEDOUT') return 'connect_timeout';
  if (/handshake has timed out/i.test(message)) return 'handshake_timeout';
  if (LOCAL_ERRNOS.includes(code)) return code.toLowerCase();
  if (
    error.library === 'SSL routines' ||
    code.startsWith('ERR_SSL') ||
    code.startsWith('ERR_TLS') ||
    /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code) ||
    /certificate/i.test(message)
  ) {
    return 'tls';
  }
  const status = /Unexpected server response: (\d{3})/.exec(message);
  if (status) return `http_${status[1]}`;
  return 'other';
}
