// Issue 14, Low: CSV fields validated like the JSON API (model/firmware ≤ 64, power battery|mains, known columns),
// spreadsheet formulas refused with the line named, quoted fields and an Excel byte-order mark read, every bad line
// named and nothing imported; the credentials CSV has no cell a spreadsheet would run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'csv-parse/sync';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { escapeFormula } from '../../devices/import.js';

describe('the device import reads CSV as CSV and refuses what a spreadsheet would run', () => {
  let t: TestGateway;
  let tech: string;
  beforeAll(async () => {
    t = await startTestGateway();
    expect((await t.api('POST', '/api/users', { username: 'tom', password: 'tom-password-12345', role: 'technician' })).status).toBe(201);
    tech = await t.token('tom', 'tom-password-12345');
  });
  afterAll(async () => t?.stop());

  const post = (body: string) => fetch(`${t.http}/api/devices/import`, {
    method: 'POST', headers: { authorization: `Bearer ${tech}`, 'content-type': 'text/csv' }, body,
  }).then(async (r) => ({ status: r.status, text: await r.text() }));

  it('reads quoted fields (commas, quotes) and an Excel byte-order mark', async () => {
    const r = await post('\uFEFFserial,kind,model,firmware\r\n"Q-1",call-phone,"Model ""X"", rev 2","1.0"\r\nQ-2,fall-sensor,"R2",\r\n');
    expect(r.status, r.text).toBe(201);
    const rows = parse(r.text, { columns: true }) as { id: string; serial: string }[];
    expect(rows.map((x) => x.serial)).toEqual(['Q-1', 'Q-2']);
    const d = await t.api('GET', `/api/devices/${rows[0]!.id}`);
    expect(d.body.model).toBe('Model "X", rev 2');
    expect(d.body.firmware).toBe('1.0');
  });

  it('refuses formulas, over-long and unknown values, naming every bad line; imports nothing', async () => {
    const csv = [
      'serial,kind,model,firmware,power',
      'OK-1,call-phone,K1,1.0,battery',
      'OK-2,call-phone,=HYPERLINK("http://evil.example"),1.0,battery',
      'OK-3,call-phone,K1,+1.0,',
      'OK-4,call-phone,@SUM(A1),1.0,',
      'OK-5,call-phone,K1,"\t-3",',
      `OK-6,call-phone,${'M'.repeat(65)},1.0,`,
      'OK-7,call-phone,K1,1.0,solar',
      'OK-8,call-phone,K1,1.0,battery,extra',
    ].join('\n');
    const r = await post(csv);
    expect(r.status).toBe(400);
    const body = JSON.parse(r.text);
    expect(body.details.badLines).toEqual([3, 4, 5, 6, 7, 8, 9]);
    expect(body.message).toMatch(/line 3: model "=HYPERLINK.*formula/);
    expect(body.message).toMatch(/line 4: firmware "\+1\.0" starts with "\+"/);
    expect(body.message).toMatch(/line 5: model "@SUM/);
    expect(body.message).toMatch(/line 6: firmware/);
    expect(body.message).toMatch(/line 7: model is 65 characters long; at most 64/);
    expect(body.message).toMatch(/line 8: power "solar" must be battery or mains/);
    expect(body.message).toMatch(/line 9: 6 cells but the header has 5 columns/);
    expect((await t.api('GET', '/api/devices?q=OK-1')).body.total).toBe(0);
    const unknown = await post('serial,kind,imei\nU-1,call-phone,123\n');
    expect(unknown.status).toBe(400);
    expect(JSON.parse(unknown.text).message).toMatch(/unknown column\(s\) "imei"/);
  });

  it('a body above the limit is 413, not parsed', async () => {
    const r = await post('serial,kind\n' + 'X'.repeat(17 * 1024 * 1024));
    expect(r.status).toBe(413);
  });

  it('no cell of the credentials CSV starts like a formula (secrets included), and exports escape such cells', async () => {
    const csv = 'serial,kind\n' + Array.from({ length: 3000 }, (_, i) => `SAFE-${i},locator`).join('\n');
    const r = await post(csv);
    expect(r.status).toBe(201);
    const rows = parse(r.text, { columns: true }) as Record<string, string>[];
    expect(rows).toHaveLength(3000);
    const risky = rows.flatMap((row) => Object.values(row)).filter((c) => /^[=+\-@\t\r]/.test(c));
    expect(risky).toEqual([]);
    expect(escapeFormula('=1+1')).toBe("'=1+1");
    expect(escapeFormula('-2')).toBe("'-2");
    expect(escapeFormula('K1')).toBe('K1');
  });
});
