// Issue 14 (low): escalation log lines carried a numeric `level` field (the escalation tier) that collided with
// pino's own `level`: a log shipper read "level 1" — below trace — and dropped or mis-filed the warning. Every line
// the gateway writes must carry pino's level, and no domain field may repeat a key pino writes itself.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../core/logger.js';
import { publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { topLevelKeys } from '../helpers/log-lines.js';

const PINO_LEVELS = new Set([10, 20, 30, 40, 50, 60]);
// what pino itself writes at the top of a line (base has `service`; isoTime gives `time`)
const RESERVED = ['level', 'time', 'pid', 'hostname', 'msg', 'service'];

describe('log lines', () => {
  const lines: string[] = [];
  let t: TestGateway;
  beforeAll(async () => {
    let partial = '';
    const sink = new Writable({
      write(chunk, _e, cb) {
        const parts = (partial + String(chunk)).split('\n');
        partial = parts.pop()!;
        lines.push(...parts.filter(Boolean));
        cb();
      },
    });
    // a short acknowledgement budget so that the SOS escalates within the test
    t = await startTestGateway({ logLevel: 'debug', budgets: { P1: { ackMs: 300 } } }, undefined, createLogger('debug', sink as never));
  }, 60_000);
  afterAll(async () => {
    await t?.stop();
  });

  it('every line has pino\'s numeric level, and no field repeats level, time, pid, hostname or msg', async () => {
    for (const [id, name, tier, parentId] of [['d1', 'District', 'district', null], ['s1', 'Street', 'street', 'd1'], ['c1', 'Community', 'community', 's1'], ['g1', 'Grid', 'grid', 'c1']]) {
      expect((await t.api('POST', '/api/units', { id, name, tier, ...(parentId ? { parentId } : {}) })).status).toBe(201);
    }
    const res = await t.api('POST', '/api/residents', { name: 'Mrs Wu', unitId: 'g1' });
    // a refused request is logged too (it used to carry `msg`, the message key)
    expect((await t.api('POST', '/api/residents', { name: 'Mrs Wu', unitId: 'no-such-unit' })).status).toBe(400);
    const dev = await t.provision();
    expect((await t.api('POST', `/api/devices/${dev.id}/bind`, { residentId: res.body.id })).status).toBe(200);
    const c = await t.connectDevice(dev.id, dev.secret);
    await publishAsync(c, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), 1);
    c.end(true);
    await waitFor(() => lines.some((l) => l.includes('acknowledgement budget breached')), 'the escalation to be logged', 20_000);

    expect(lines.length).toBeGreaterThan(10);
    for (const line of lines) {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      expect(PINO_LEVELS.has(parsed.level as number), line).toBe(true);
      const keys = topLevelKeys(line);
      for (const k of RESERVED) expect(keys.filter((x) => x === k).length, `${k} twice in ${line}`).toBeLessThanOrEqual(1);
    }
    const escalated = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'acknowledgement budget breached: incident escalated')!;
    expect(escalated).toMatchObject({ level: 40, escalationLevel: 1, from: 'g1', to: 'c1' });
    const refused = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'request refused')!;
    expect(refused).toMatchObject({ level: 30, code: 'BAD_REQUEST', reason: expect.stringMatching(/unitId/) });
  }, 60_000);
});
