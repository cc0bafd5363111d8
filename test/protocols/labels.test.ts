// The console's words for the cards the protocol terminals bring (server/console/web/board.ts typeLabel): an unmapped
// code's own card `unknown-event:<code>` reads "Unknown event <code>", a lost reporting path "Communication lost".
import { describe, expect, it } from 'vitest';
import { typeLabel } from '../../server/console/web/board.js';

describe('console labels of protocol cards', () => {
  it('names the per-code unknown cards with their code, and the link cards in words', () => {
    expect(typeLabel('unknown-event:732')).toBe('Unknown event 732');
    expect(typeLabel('unknown-event:watch-low-battery')).toBe('Unknown event watch-low-battery');
    expect(typeLabel('unknown-event')).toBe('Unknown event from terminal');
    expect(typeLabel('comm-lost')).toBe('Communication lost');
    expect(typeLabel('device-fault')).toBe('Device fault');
    expect(typeLabel('sos')).toBe('SOS');
    expect(typeLabel('something-new')).toBe('something-new');
  });
});
