// The MQTT session an observation arrived on: what dedup needs to tell a resend (a new connection replaying what
// was not acknowledged [MQTT-4.4.0-1], same packet id [MQTT-4.3.2-1]) from a new message with a repeated key.
import type { Observation } from '../../core/contracts.js';

const sessions = new WeakMap<object, string>();
let counter = 0;

/** `clientId@<ms>.<n>`: one per connection object, stable for its life, never reused (the counter breaks ties). */
export function sessionOf(client: { id: string }): string {
  let s = sessions.get(client);
  if (s === undefined) {
    s = `${client.id}@${Date.now()}.${(counter = (counter + 1) % 1_000_000)}`;
    sessions.set(client, s);
  }
  return s;
}

/** Stamp the transport facts dedup uses onto an observation decoded from `packet`. */
export function stampSession(obs: Observation, client: { id: string }, packet: { qos: number; messageId?: number; dup?: boolean }): void {
  obs.session = sessionOf(client);
  if (packet.qos > 0 && packet.messageId !== undefined) obs.packetId = packet.messageId;
  if (packet.dup) obs.redelivered = true;
}
