// Placeholder until the watch protocol lands (its engineer replaces this file): a configured watch listener refuses to start.
import type { ListenerSettings, ProtocolHandler, ProtocolServices } from '../types.js';

export function createWatchProtocol(_services: ProtocolServices, _settings: ListenerSettings): ProtocolHandler<never> {
  throw new Error('the watch protocol is not built yet');
}
