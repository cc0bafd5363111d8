// Every alarm asks for the device's open incident of its type (the store's openOf). On the committed migrations that
// question is answered from the partial index of open incidents, not by reading the device's whole history of that
// type and sorting it (migration 0007): a device that has raised a thousand times pays nothing for it on its next
// alarm. The resident the device is bound to, and a receiver's unknown account, are checked on the index's few rows, not
// searched. Pinned here so that a schema or query change that loses the index fails a test instead of slowing alarms.
import { describe, expect, it } from 'vitest';
import { OPEN_OF_SQL } from '../../response/store/sqlite.js';
import { RULES_OPEN_SQL } from '../../gateway/ingest-scope.js';
import { useMigratedStore } from '../helpers/sqlite-plan.js';

describe('the open-incident lookup of the alarm path', () => {
  const { store, planOf } = useMigratedStore('eldergate-plan');

  it('reads the index of open incidents only, newest first, with no sort', () => {
    const plan = planOf(OPEN_OF_SQL, 'dev-1', 'sos', 0, 'r-1', null);
    expect(plan).toEqual([expect.stringMatching(/^SEARCH incidents USING INDEX incidents_active_idx \(device_id=\? AND type=\? AND test=\?\)$/)]);
  });

  // the rules' question (gateway/ingest-scope.ts): the same index, the device's test mark read by its primary key
  it('answers the rules from the same index, with the device\'s test mark read by its key', () => {
    expect(planOf(RULES_OPEN_SQL, 'dev-1', 'sos', 'dev-1', 'r-1', null)).toEqual([
      expect.stringMatching(/^SEARCH incidents USING INDEX incidents_active_idx \(device_id=\? AND type=\? AND test=\?\)$/),
      'SCALAR SUBQUERY 1',
      expect.stringMatching(/^SEARCH devices USING INDEX sqlite_autoindex_devices_1 \(id=\?\)$/),
    ]);
  });

  it('finds the open one behind a thousand closed ones of the same device and type', () => {
    const insert = store.sqlite.prepare(`INSERT INTO incidents (id, device_id, type, priority, status, test, count, opened_at, last_at, stamps, last_seq)
      VALUES (?, 'dev-1', 'sos', 'P1', ?, 0, 1, ?, ?, '{}', 1)`);
    store.sqlite.transaction(() => {
      for (let i = 0; i < 1000; i++) insert.run(`old-${i}`, i % 2 ? 'resolved' : 'cancelled', i, i);
      insert.run('open-1', 'open', 500.5, 500.5);
    })();
    expect(store.sqlite.prepare(OPEN_OF_SQL).get('dev-1', 'sos', 0, null, null)).toMatchObject({ id: 'open-1', status: 'open' });
    expect(store.sqlite.prepare(OPEN_OF_SQL).get('dev-1', 'sos', 1, null, null)).toBeUndefined();
    // the resident is part of the question (bound to nobody is a binding of its own): another's is not found
    expect(store.sqlite.prepare(OPEN_OF_SQL).get('dev-1', 'sos', 0, 'r-1', null)).toBeUndefined();
    // and so is a receiver's unknown account (no account is an account of its own)
    expect(store.sqlite.prepare(OPEN_OF_SQL).get('dev-1', 'sos', 0, null, '01:1:1234')).toBeUndefined();
  });
});
