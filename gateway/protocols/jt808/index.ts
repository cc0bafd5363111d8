// Placeholder until the jt808 protocol lands (its engineer replaces this file): a configured jt808 listener refuses to start.
import type { ListenerSettings, ProtocolHandler, ProtocolServices } from '../types.js';

export function createJt808Protocol(_services: ProtocolServices, _settings: ListenerSettings): ProtocolHandler<never> {
  throw new Error('the jt808 protocol is not built yet');
}
