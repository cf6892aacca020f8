/** Classifies why a handshake failed: refused, reset, tls, timeout, http_<status>, local, other. */
export function classifyHandshakeError(error: Error & { code?: string; library?: string }): string {
  const code = error.code ?? '';
  const message = error.message ?? '';
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ECONNRESET' || code === 'EPIPE' || /socket hang up/.test(message)) return 'reset';
  if (code === 'ETIMEDOUT' || /handshake has timed out/i.test(message)) return 'timeout';
  if (code === 'EADDRNOTAVAIL' || code === 'EMFILE' || code === 'ENFILE' || code === 'EADDRINUSE') return 'local_resources';
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
