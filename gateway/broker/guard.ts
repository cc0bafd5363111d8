// Bound what a connection may send before aedes has parsed it. aedes buffers a 64 MiB pre-CONNECT packet without
// complaint (docs/design.md §2), so we look at each chunk before its parser does: the first packet must be CONNECT
// [MQTT-3.1.0-1], a connection that has not completed CONNECT may send at most maxPreConnectBytes, and no packet may
// exceed maxPacketBytes (what the parser holds unparsed is bounded by it).
//
// This wraps the parser aedes creates for each client (`client._parser.parse`): the one place we reach into aedes.
// test/gateway/broker-guard.test.ts fails if an aedes upgrade moves it.
import type { Socket } from 'node:net';
import type { Client } from 'aedes';

interface Parser {
  parse(buf: Buffer): number;
}

export interface GuardOptions {
  maxPacketBytes: number;
  maxPreConnectBytes: number;
  onRefuse(reason: string): void;
}

export function guardConnection(client: Client, socket: Socket, o: GuardOptions): void {
  const parser = (client as unknown as { _parser?: Parser })._parser;
  if (!parser || typeof parser.parse !== 'function') {
    throw new Error('aedes client has no _parser.parse: the connection guard must be updated for this aedes version');
  }
  const original = parser.parse.bind(parser);
  let seen = 0;
  let first = true;
  let done = false;
  // only a chunk that starts at a packet boundary starts with a fixed header
  let atBoundary = true;
  const kill = (reason: string) => {
    if (done) return;
    done = true;
    o.onRefuse(reason);
    socket.destroy();
  };
  parser.parse = (buf: Buffer): number => {
    if (done) return 0;
    if (first && buf.length > 0) {
      first = false;
      // fixed header: packet type in the high nibble; CONNECT is 1
      if (buf[0]! >> 4 !== 1) {
        kill('first packet is not CONNECT');
        return 0;
      }
    }
    if (!client.connected) {
      seen += buf.length;
      if (seen > o.maxPreConnectBytes) {
        kill(`more than ${o.maxPreConnectBytes} bytes before CONNECT completed`);
        return 0;
      }
    }
    const declared = atBoundary ? declaredLength(buf) : 0;
    if (declared > o.maxPacketBytes) {
      kill(`packet of ${declared} bytes exceeds the limit of ${o.maxPacketBytes}`);
      return 0;
    }
    const pending = original(buf);
    atBoundary = pending === 0;
    if (pending > o.maxPacketBytes) {
      kill(`packet exceeds the limit of ${o.maxPacketBytes} bytes`);
      return 0;
    }
    return pending;
  };
}

/** The remaining length a chunk's first fixed header declares (MQTT 3.1.1 §2.2.3), or 0 when not decodable here. */
function declaredLength(buf: Buffer): number {
  let value = 0;
  let mult = 1;
  for (let i = 1; i < 5 && i < buf.length; i++) {
    const b = buf[i]!;
    value += (b & 0x7f) * mult;
    if ((b & 0x80) === 0) return value;
    mult *= 128;
  }
  return 0;
}
