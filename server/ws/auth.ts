// Who may open /ws, decided before the upgrade (a refused client gets a plain HTTP 401/403, never a socket).
//
// The token: `Authorization: Bearer <token>` from programs; a browser cannot set headers on a WebSocket, so it
// offers the token as a second subprotocol, `new WebSocket(url, ['eldergate.v1', 'eldergate.bearer.' + token])`.
// Why this and not a ticket or a query parameter: the token never appears in a URL (so never in access logs,
// proxies' logs or the browser history), there is no extra round trip nor server-side ticket state to lose on
// a restart, and a console reconnecting after a network drop needs nothing but the token it already holds. The
// server answers with `eldergate.v1` only, so the token is not echoed back. (Token characters — base64url and
// "." — are all valid in a subprotocol, RFC 6455 §4.1 / RFC 7230 token.)
//
// The Origin: a browser always sends it; a page of another site must not open a socket with a token it found.
// Allowed: our own origin (same host as the request's Host header) and config.http.allowedOrigins. Programs
// that send no Origin are allowed: they are not a browser being abused (RFC 6455 §10.2).
import type { FastifyRequest } from 'fastify';
import { ForbiddenError, UnauthorizedError } from '../../core/errors.js';
import type { AuthUser, Users } from '../../core/users.js';
import { BEARER_PREFIX, PROTOCOL } from './protocol.js';

/** The offered subprotocols, as the browser sent them (comma-separated, RFC 6455 §11.3.4). */
export function offeredProtocols(req: FastifyRequest): string[] {
  const raw = req.headers['sec-websocket-protocol'];
  const all = Array.isArray(raw) ? raw.join(',') : (raw ?? '');
  return all.split(',').map((p) => p.trim()).filter(Boolean);
}

export function wsToken(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (h?.startsWith('Bearer ')) return h.slice(7).trim();
  const p = offeredProtocols(req).find((x) => x.startsWith(BEARER_PREFIX));
  return p ? p.slice(BEARER_PREFIX.length) : undefined;
}

export function authenticateWs(users: Users, req: FastifyRequest): { user: AuthUser; token: string } {
  const token = wsToken(req);
  if (!token) {
    throw new UnauthorizedError(
      `log in first: send Authorization: Bearer <token>, or (from a browser) offer the subprotocols "${PROTOCOL}" and "${BEARER_PREFIX}<token>"`,
    );
  }
  return { user: users.verify(token), token };
}

const normalise = (origin: string) => origin.trim().replace(/\/+$/, '').toLowerCase();

export function checkOrigin(req: FastifyRequest, allowed: readonly string[]): void {
  const origin = req.headers.origin;
  if (origin === undefined) return;
  const o = normalise(origin);
  if (allowed.some((a) => normalise(a) === o)) return;
  let host: string | undefined;
  try {
    const u = new URL(o);
    host = u.protocol === 'http:' || u.protocol === 'https:' ? u.host : undefined;
  } catch {
    host = undefined;
  }
  if (host && req.headers.host && host === req.headers.host.toLowerCase()) return;
  throw new ForbiddenError(
    `origin ${origin.slice(0, 100)} may not open the alarm stream: open the console from this server, or add the origin to http.allowedOrigins`,
  );
}

/** ws' handleProtocols: answer with our protocol only (never the bearer one). */
export function selectProtocol(protocols: Set<string>): string | false {
  return protocols.has(PROTOCOL) ? PROTOCOL : false;
}
