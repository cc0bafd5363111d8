// The incident list (GET /api/incidents) pages through a city's history newest first. On the committed migrations its
// order is an index's (incidents_list_idx: opened_at DESC, id), so a page 100,000 deep walks index entries and reads
// 50 rows; on the index of opened_at alone SQLite read every row it skipped to break ties by id (220-240 ms of the main
// thread at 300,000 incidents, every socket waiting). Pinned here: a schema or query change that loses it fails.
import { describe, expect, it } from 'vitest';
import { createSqliteIncidentStore, INCIDENT_LIST_ORDER } from '../../response/store/sqlite.js';
import { useMigratedStore } from '../helpers/sqlite-plan.js';

describe('the incident list\'s order', () => {
  const { store, planOf } = useMigratedStore('eldergate-incident-list');

  // (a filter with an index of its own, status or device, may read that one and sort its few rows)
  it('is read from its index, with no sort, for a deep page and a range of opening time', () => {
    for (const where of ['', 'WHERE opened_at >= ? AND opened_at < ?']) {
      const args = where.includes('?') ? [0, 1] : [];
      const plan = planOf(`SELECT * FROM incidents ${where} ${INCIDENT_LIST_ORDER} LIMIT 50 OFFSET 100000`, ...args).join('; ');
      expect(plan).toMatch(/SCAN incidents USING INDEX incidents_list_idx|SEARCH incidents USING INDEX incidents_list_idx/);
      expect(plan).not.toContain('TEMP B-TREE');
    }
  });

  it('gives newest first, ties by id, page after page', () => {
    const insert = store.sqlite.prepare(`INSERT INTO incidents (id, device_id, type, priority, status, test, count, opened_at, last_at, stamps, last_seq)
      VALUES (?, 'dev-1', 'sos', 'P1', 'resolved', 0, 1, ?, ?, '{}', 1)`);
    const rows: { id: string; at: number }[] = [];
    store.sqlite.transaction(() => {
      // many ties: 1,200 incidents over 100 opening times
      for (let i = 0; i < 1200; i++) {
        const row = { id: `inc-${(i * 7919) % 1200}`, at: 1_000 + (i % 100) };
        rows.push(row);
        insert.run(row.id, row.at, row.at);
      }
    })();
    const want = rows.sort((a, b) => b.at - a.at || (a.id < b.id ? -1 : 1)).map((r) => r.id);
    const incidents = createSqliteIncidentStore(store.sqlite);
    const got: string[] = [];
    for (let offset = 0; offset < 1200; offset += 70) got.push(...incidents.list({ scopes: [], limit: 70, offset }).items.map((r) => r.id));
    expect(got).toEqual(want);
  });
});
