// Placeholder until the dc09 protocol lands (its engineer replaces this file): a configured dc09 listener refuses to start.
import type { ListenerSettings, ProtocolHandler, ProtocolServices } from '../types.js';

export function createDc09Protocol(_services: ProtocolServices, _settings: ListenerSettings): ProtocolHandler<never> {
  throw new Error('the dc09 protocol is not built yet');
}
