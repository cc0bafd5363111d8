// The console stream's messages (docs/websocket.md). Client messages are parsed by hand: there are three, and each
// refusal must say exactly what was wrong so that a console developer can fix it from the close reason alone.
import type { IncidentEvent } from '../../core/contracts.js';

/** The subprotocol every client offers; a browser offers `eldergate.bearer.<token>` next to it (see auth.ts). */
export const PROTOCOL = 'eldergate.v1';
export const BEARER_PREFIX = 'eldergate.bearer.';

/** Close codes. 1xxx are RFC 6455 §7.4.1; 4xxx are ours (the range RFC 6455 leaves to applications). */
export const CLOSE = {
  /** RFC 6455: the server is going away (shutdown) */
  goingAway: 1001,
  /** RFC 6455: a binary frame; we only speak JSON text */
  unsupported: 1003,
  /** RFC 6455: the text was not JSON */
  invalidPayload: 1007,
  /** RFC 6455: larger than maxPayload (sent by `ws` itself) */
  tooBig: 1009,
  /** RFC 6455: unexpected server error */
  internal: 1011,
  /** the message was JSON but not a valid client message */
  badMessage: 4400,
  /** the token expired or the user was disabled while connected: log in again */
  unauthorized: 4401,
  /** the console fell behind: reconnect and resume with `since` */
  tooSlow: 4408,
  /** this user already holds http.wsMaxPerUser open consoles: close one (another tab?) and retry */
  tooManyForUser: 4429,
} as const;

export type StreamEvent = IncidentEvent & { unitId: string | null };

export type ClientMessage =
  | { type: 'subscribe'; scope: 'all' | string; since?: number }
  | { type: 'ack'; seq: number }
  | { type: 'ping'; id?: string | number };

export type ServerMessage =
  | { type: 'hello'; protocol: string; user: { id: string; username: string; role: string; unitId: string | null }; head: number; pingIntervalMs: number; maxPayloadBytes: number }
  | { type: 'subscribed'; scope: string; since: number; head: number }
  | { type: 'incident'; seq: number; event: StreamEvent }
  | { type: 'replayed'; until: number; count: number }
  | { type: 'pong'; id?: string | number; head: number; at: number }
  | { type: 'error'; code: ErrorCode; message: string; details?: Record<string, unknown> };

export type ErrorCode = 'FORBIDDEN_SCOPE' | 'SINCE_BEYOND_LATEST' | 'ALREADY_SUBSCRIBED' | 'BAD_ACK' | 'NOT_SUBSCRIBED';

export class BadMessage extends Error {
  constructor(
    readonly closeCode: number,
    message: string,
  ) {
    super(message);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isSeq = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Parse one text frame; throws BadMessage with the close code and a reason a developer can act on. */
export function parseClientMessage(text: string): ClientMessage {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    throw new BadMessage(CLOSE.invalidPayload, 'malformed JSON: send one JSON object per text frame');
  }
  if (!isObject(msg) || typeof msg.type !== 'string') {
    throw new BadMessage(CLOSE.badMessage, 'a message is a JSON object with a string "type": subscribe, ack or ping');
  }
  switch (msg.type) {
    case 'subscribe': {
      const { scope, since } = msg;
      if (typeof scope !== 'string' || scope.length === 0 || scope.length > 64) {
        throw new BadMessage(CLOSE.badMessage, 'subscribe: "scope" must be "all" or a unit id');
      }
      if (since !== undefined && !isSeq(since)) {
        throw new BadMessage(CLOSE.badMessage, 'subscribe: "since" must be a non-negative integer (the last seq you saw; 0 = everything)');
      }
      return since === undefined ? { type: 'subscribe', scope } : { type: 'subscribe', scope, since };
    }
    case 'ack':
      if (!isSeq(msg.seq)) throw new BadMessage(CLOSE.badMessage, 'ack: "seq" must be the non-negative integer seq of the last incident frame you processed');
      return { type: 'ack', seq: msg.seq };
    case 'ping': {
      const id = msg.id;
      if (id !== undefined && !(typeof id === 'number' || (typeof id === 'string' && id.length <= 64))) {
        throw new BadMessage(CLOSE.badMessage, 'ping: "id" must be a number or a short string');
      }
      return id === undefined ? { type: 'ping' } : { type: 'ping', id };
    }
    default:
      throw new BadMessage(CLOSE.badMessage, `unknown message type "${msg.type.slice(0, 32)}": use subscribe, ack or ping`);
  }
}

/** A close reason is at most 123 bytes (RFC 6455 §5.5: control frame payload ≤ 125, minus the 2-byte code). */
export function closeReason(text: string): string {
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= 123) return text;
  return buf.subarray(0, 120).toString('utf8').replace(/\uFFFD+$/, '') + '...';
}
