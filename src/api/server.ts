/**
 * The HTTP server around the app. Requests Node rejects before Express sees them (a URL or headers
 * over 16 KiB, a malformed request, chunked + Content-Length, a client too slow to send its headers
 * or body) get the same JSON error shape as everything else instead of Node's bare answers.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { RequestListener } from 'node:http';
import type { Config } from '../config';
import type { Logger } from '../logger';

/** Node's parser/timeout error codes → our answer; anything else is a 400. */
const CLIENT_ERRORS: Record<string, { status: number; code: string; message: string }> = {
  HPE_HEADER_OVERFLOW: { status: 431, code: 'headers_too_large', message: 'the request line and headers must fit in 16 KiB' },
  HPE_CHUNK_EXTENSIONS_OVERFLOW: { status: 413, code: 'chunk_extensions_too_large', message: 'chunk extensions are too large' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, code: 'request_timeout', message: 'the request did not arrive in time' },
  HPE_INVALID_TRANSFER_ENCODING: {
    status: 400,
    code: 'bad_request',
    message: 'Transfer-Encoding and Content-Length must not both be sent',
  },
  HPE_UNEXPECTED_CONTENT_LENGTH: {
    status: 400,
    code: 'bad_request',
    message: 'Transfer-Encoding and Content-Length must not both be sent',
  },
};

export function createHttpServer(app: RequestListener, cfg: Config['http'], log: Logger): http.Server {
  const server = http.createServer(
    {
      headersTimeout: cfg.headersTimeoutMs,
      requestTimeout: cfg.requestTimeoutMs,
      // How often Node checks those two timeouts (default 30 s, which would stretch them).
      connectionsCheckingInterval: Math.min(1000, cfg.headersTimeoutMs),
    },
    app,
  );
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // As Node's own handler: answer only when no response of this connection has started.
    const inFlight = (socket as Duplex & { _httpMessage?: http.ServerResponse })._httpMessage;
    // ECONNRESET / EOF mid-request: the client left (a request in flight logs that once, as an abort).
    const gone = err.code === 'ECONNRESET' || err.code === 'HPE_INVALID_EOF_STATE';
    if (!gone && socket.writable && !inFlight?.headersSent) {
      const e = CLIENT_ERRORS[err.code ?? ''] ?? { status: 400, code: 'bad_request', message: 'malformed HTTP request' };
      const body = JSON.stringify({ error: { code: e.code, message: e.message } });
      socket.write(
        `HTTP/1.1 ${e.status} ${http.STATUS_CODES[e.status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
      // Like any other 4xx, nothing wrong on our side: debug, so a flood of bad requests cannot flood the log.
      log.debug('bad request from client', { status: e.status, code: e.code, reason: err.code });
    }
    socket.destroy();
  });
  return server;
}

/** Listens on host:port; resolves once it does. */
export function listen(server: http.Server, cfg: Config['http']): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
