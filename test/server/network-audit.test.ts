// Issue 13 §1: changes to the response network (units, staff, who is on duty) are in the audit log, like user
// changes: who did it, to what, and what changed. A refused delete leaves no entry.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

describe('network changes are audited', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); }, 30_000);
  afterAll(async () => t?.stop());

  const audit = async (target: string) => {
    const r = await t.api('GET', `/api/audit?target=${encodeURIComponent(target)}`);
    expect(r.status).toBe(200);
    return (r.body.items as { action: string; actor: string; details: Record<string, unknown> }[]).reverse();
  };

  it('unit create, rename, refused delete, delete; staff create, edit, on/off duty (by a steward), remove', async () => {
    expect((await t.api('POST', '/api/units', { id: 'd1', name: 'District', tier: 'district' })).status).toBe(201);
    expect((await t.api('POST', '/api/units', { id: 'g1', name: 'Grid one', tier: 'grid', parentId: 'd1' })).status).toBe(201);
    expect((await t.api('PATCH', '/api/units/g1', { name: 'Grid 1 (north)', tier: 'grid' })).status).toBe(200);
    const s = await t.api('POST', '/api/staff', { name: 'Nina Nurse', role: 'nurse', unitId: 'g1', phone: '+49 30 555' });
    expect(s.status).toBe(201);
    const id = s.body.id as string;
    expect((await t.api('DELETE', '/api/units/g1')).status).toBe(409); // still has staff
    expect((await t.api('PATCH', `/api/staff/${id}`, { phone: '+49 30 556' })).status).toBe(200);

    expect((await t.api('POST', '/api/users', { username: 'stella', password: 'stella-long-passphrase-1', role: 'steward', unitId: 'g1' })).status).toBe(201);
    const steward = await t.token('stella', 'stella-long-passphrase-1');
    expect((await t.api('POST', `/api/staff/${id}/on-duty`, { onDuty: true }, steward)).status).toBe(200);
    expect((await t.api('POST', `/api/staff/${id}/on-duty`, { onDuty: true }, steward)).status).toBe(200); // no change
    expect((await t.api('POST', `/api/staff/${id}/on-duty`, { onDuty: false })).status).toBe(200);
    expect((await t.api('DELETE', `/api/staff/${id}`)).status).toBe(204);
    expect((await t.api('PATCH', '/api/users/' + (await t.api('GET', '/api/users')).body.items.find((u: { username: string }) => u.username === 'stella').id, { unitId: null })).status).toBe(200);
    expect((await t.api('DELETE', '/api/units/g1')).status).toBe(204);

    const unit = await audit('unit:g1');
    expect(unit.map((e) => e.action)).toEqual(['unit.create', 'unit.update', 'unit.delete']);
    expect(unit[1]!.details).toMatchObject({ before: { name: 'Grid one' }, after: { name: 'Grid 1 (north)' } });
    expect(unit[1]!.details.before).not.toHaveProperty('tier'); // unchanged fields are not repeated
    expect(unit.every((e) => e.actor === 'admin')).toBe(true);

    const staff = await audit(`staff:${id}`);
    expect(staff.map((e) => [e.action, e.actor])).toEqual([
      ['staff.create', 'admin'], ['staff.update', 'admin'], ['staff.on-duty', 'stella'], ['staff.off-duty', 'admin'], ['staff.delete', 'admin'],
    ]);
    expect(staff[1]!.details).toMatchObject({ before: { phone: '+49 30 555' }, after: { phone: '+49 30 556' } });
  });
});
