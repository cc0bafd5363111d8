// Residents in the console (issue 13 §1): an admin registers a resident with a contact, her home and a circular safe
// zone, finds her by name and by address; an operator (the server lets operators edit within their units) and a
// steward (read only, phone-sized) see the same screen as the server allows. The API underneath: search by name or
// address, and every change of a resident audited.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { buildNetwork, login, type Network } from '../ws/helpers.js';
import { browserAndGateway, loginAs, watchErrors } from './browser.js';

const DOCS = join(dirname(fileURLToPath(import.meta.url)), '../../docs');

describe('residents: API (search, audit)', () => {
  const rig = browserAndGateway();

  it('GET /api/residents?q= matches a name or an address, wildcards typed are letters, within the scope', async () => {
    const { t } = rig;
    const n = await buildNetwork(t);
    const mk = async (name: string, address: string, unitId: string) => {
      const r = await t.api('POST', '/api/residents', { name, address, unitId });
      expect(r.status).toBe(201);
      return r.body.id as string;
    };
    const a = await mk('Hedwig Sommer', 'Lindenweg 7', 'gA');
    const b = await mk('Otto 100% Winter', 'Am Markt 2', 'gB');
    const names = async (q: string, token?: string) =>
      ((await t.api('GET', `/api/residents?q=${encodeURIComponent(q)}`, undefined, token)).body.items as { id: string }[]).map((r) => r.id);
    expect(await names('sommer')).toEqual([a]);
    expect(await names('lindenweg')).toEqual([a]);
    expect(await names('100%')).toEqual([b]);
    expect(await names('%')).toEqual([b]); // a literal percent sign, not "everything"
    expect(await names('_')).toEqual([]);
    // a steward of grid A finds only the residents of grid A
    const steward = await login(t, n, n.users.stewardA);
    expect(await names('markt', steward)).toEqual([]);
    expect(await names('linden', steward)).toEqual([a]);
  });

  it('creating and changing a resident is audited: who, which fields, the unit before and after (no personal values)', async () => {
    const { t } = rig;
    const created = await t.api('POST', '/api/residents', { name: 'Ilse Audit', address: 'Geheimweg 1', notes: 'diabetic' });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect((await t.api('PATCH', `/api/residents/${id}`, { unitId: 'gA', notes: 'insulin in the fridge' })).status).toBe(200);
    const log = await t.api('GET', `/api/audit?target=resident:${id}`);
    expect(log.status).toBe(200);
    const entries = (log.body.items as { action: string; actor: string; details: Record<string, unknown> }[]).reverse();
    expect(entries.map((e) => e.action)).toEqual(['resident.create', 'resident.update']);
    expect(entries[0]!.actor).toBe('admin');
    expect(entries[0]!.details).toEqual({ unitId: null, fields: ['name', 'address', 'notes'] });
    expect(entries[1]!.details).toEqual({ fields: ['unitId', 'notes'], unitId: { before: null, after: 'gA' } });
    expect(JSON.stringify(log.body)).not.toMatch(/Geheimweg|diabetic|insulin/);
  });
});
