// The DC-09 poll supervisor (gateway/protocols/dc09/supervision.ts) when a panel's poll arrives while its comm-lost
// is being written: the link must not be left `lost` (a card standing over a panel that is polling). The store is held
// by hand so that the poll lands exactly inside the write; the clock is the test's.
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../core/logger.js';
import { PollSupervisor } from '../../../gateway/protocols/dc09/supervision.js';

describe('DC-09 supervisor: a poll during the comm-lost write', () => {
  it('restores the link once the comm-lost is durable: the card raised at the check is cleared, not left standing', async () => {
    let mono = 0;
    const reports: string[] = [];
    let release: (() => void) | undefined;
    const s = new PollSupervisor({
      now: () => 1_700_000_000_000 + mono,
      mono: () => mono,
      factor: 2,
      log: createLogger('silent'),
      stillSupervised: () => true,
      report(_deviceId, type) {
        reports.push(type);
        // the comm-lost write is slow (a busy disk): it completes when the test says
        if (type === 'comm-lost') return new Promise<void>((resolve) => { release = resolve; });
        return Promise.resolve();
      },
    });
    try {
      await s.contact('dev-1', '1234', 1000); // first contact: comm-restored (afterStart), link ok
      expect(s.state('dev-1')).toBe('ok');
      mono += 2500; // silent past interval × factor
      s.tick();
      await new Promise((r) => setImmediate(r));
      expect(reports).toEqual(['comm-restored', 'comm-lost']);
      // the panel polls while the comm-lost is being written
      const polled = s.contact('dev-1', '1234', 1000);
      release!();
      await polled;
      expect(reports).toEqual(['comm-restored', 'comm-lost', 'comm-restored']);
      expect(s.state('dev-1')).toBe('ok');
    } finally {
      await s.close();
    }
  });
});
