// The follower's own decisions (response/follow-resident.ts), over an incident list held in memory: the real path,
// through a gateway, is test/response/resident-moved.test.ts. Here: an incident opened in the resident's old unit (the
// writer thread's copy of the registry a moment behind) is moved at once; one acknowledged is left where it is; a
// move that fails is tried again until it is made.
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../core/logger.js';
import { followResidents } from '../../response/follow-resident.js';
import type { IncidentRow } from '../../response/incidents.js';
import { waitFor } from './helpers.js';

function rig(rows: Partial<IncidentRow>[], unitOf: Record<string, string | null>, failFirst = 0) {
  const moves: { id: string; unitId: string | null; above: readonly string[] }[] = [];
  let failures = failFirst;
  const follower = followResidents({
    log: createLogger('silent'),
    retryMs: 20,
    unitOf: (id) => unitOf[id],
    network: { ancestors: (id: string) => (id === 'g2' ? [{ id: 'c2' }, { id: 'd1' }] : []) as never },
    incidents: {
      active: () => ({ items: rows as IncidentRow[], head: 0, next: null }),
      move: (id: string, to: { unitId: string | null; above: readonly string[] }) => {
        if (failures > 0) {
          failures--;
          throw new Error('the writer is restarting');
        }
        moves.push({ id, ...to });
        const row = rows.find((r) => r.id === id)!;
        row.unitId = to.unitId;
        return [] as never;
      },
    } as never,
  });
  return { follower, moves };
}

describe('the resident follower', () => {
  it('an incident opened in her old unit is moved at once; one in her unit is not', async () => {
    const rows: Partial<IncidentRow>[] = [{ id: 'i1', residentId: 'r1', unitId: 'g1', status: 'open' }];
    const { follower, moves } = rig(rows, { r1: 'g2' });
    follower.opened('r1', 'g2');
    follower.opened(null, 'g1');
    await new Promise((r) => setTimeout(r, 20));
    expect(moves).toEqual([]);
    follower.opened('r1', 'g1');
    await waitFor('the move', () => moves.length > 0 || undefined);
    expect(moves).toEqual([{ id: 'i1', unitId: 'g2', above: ['c2', 'd1'] }]);
    follower.close();
  });

  it('one acknowledged stays with its handlers; a move that fails is tried again until it is made', async () => {
    const rows: Partial<IncidentRow>[] = [
      { id: 'taken', residentId: 'r1', unitId: 'g1', status: 'acknowledged' },
      { id: 'waiting', residentId: 'r1', unitId: 'g1', status: 'open' },
    ];
    const { follower, moves } = rig(rows, { r1: 'g2' }, 2);
    follower.residentChanged('r1');
    await waitFor('the move, after two failures', () => moves.length > 0 || undefined, 2_000);
    expect(moves.map((m) => m.id)).toEqual(['waiting']);
    follower.close();
  });
});
