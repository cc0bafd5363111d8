// `protocols.<name>` in the configuration: the common listener settings plus each protocol's own
// (gateway/protocols/<name>/settings.ts). A listener is off unless configured: it starts when `port` is set
// (ELDERGATE_PROTOCOLS_WATCH_PORT=5093) and `enabled` is not false.
import { Type, type TProperties } from '@sinclair/typebox';
import { watchSettings } from './watch/settings.js';
import { jt808Settings } from './jt808/settings.js';
import { dc09Settings } from './dc09/settings.js';
import type { ListenerSettings } from './types.js';


const common = (udp: boolean, idleTimeoutMs: number) => ({
  enabled: Type.Boolean({ default: true, description: 'false switches a configured listener off' }),
  host: Type.String({ default: '0.0.0.0', description: 'address to listen on' }),
  port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'TCP port; the listener is off until it is set (0 = any free port)' })),
  udp: Type.Boolean({ default: udp, description: 'also listen on UDP at the same port' }),
  maxConnections: Type.Integer({ minimum: 1, default: 20_000, description: 'connections held at once (lowered to the descriptor budget)' }),
  maxConnectionsPerAddress: Type.Integer({ minimum: 1, default: 64, description: 'connections from one address (terminals behind one carrier NAT share one)' }),
  idleTimeoutMs: Type.Integer({ minimum: 1000, default: idleTimeoutMs, description: 'a silent connection is closed after this long' }),
  maxFrameBytes: Type.Integer({ minimum: 64, maximum: 1 << 20, default: 8192, description: 'bytes held before the end of a frame is found' }),
  bindTimeoutMs: Type.Integer({ minimum: 100, default: 60_000, description: 'a connection that has not said which provisioned device it is within this long is closed' }),
});

const listener = (udp: boolean, idleTimeoutMs: number, extra: TProperties) =>
  Type.Object({ ...common(udp, idleTimeoutMs), ...extra }, { default: {}, additionalProperties: false });

export const ProtocolsSchema = Type.Object(
  {
    watch: listener(false, 15 * 60_000, watchSettings),
    jt808: listener(false, 15 * 60_000, jt808Settings),
    dc09: listener(true, 10 * 60_000, dc09Settings),
  },
  { default: {}, additionalProperties: false },
);

/** The settings of a listener that is on, or undefined. */
export function activeListener(s: Partial<ListenerSettings> & { port?: number | undefined; enabled?: boolean }): ListenerSettings | undefined {
  if (s.port === undefined || s.enabled === false) return undefined;
  return s as ListenerSettings;
}
