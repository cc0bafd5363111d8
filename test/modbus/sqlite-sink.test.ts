// The poller handing its observations to the real ingest on a real SQLite file: what it reports is durable.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../core/db.js';
import { loadConfig } from '../../core/config.js';
import { createMetrics } from '../../core/metrics.js';
import { DeviceStates } from '../../gateway/device-state.js';
import { devices } from '../../devices/schema.js';
import { Ingest } from '../../gateway/ingest.js';
import { loadRegisterMap } from '../../gateway/adapters/modbus/register-map.js';
import { startModbusLink, type ModbusLink } from '../../gateway/adapters/modbus/poller.js';
import { deviceForChannels } from '../../gateway/adapters/modbus/config.js';
import { killAll, log, startSim, waitFor } from './helpers.js';

let link: ModbusLink | undefined;
let store: Store | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await link?.close();
  store?.close();
  await killAll();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Row { device_id: string; type: string; source: string; life_safety: number; data: string }

describe('Modbus poller with the SQLite-backed ingest', () => {
  it('bed exits and a lost link are rows in the database file, in order, after the poller awaited them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eg-modbus-'));
    dirs.push(dir);
    const file = join(dir, 'eldergate.db');
    store = openStore(file);
    // the devices a technician registered for this controller: the store refuses observations of unknown devices
    const now = Date.now();
    for (const [id, serial] of [['ctl', 'CTL-0001'], ['mat-2', 'MAT-0002']] as const) {
      store.db.insert(devices).values({ id, kind: 'modbus', serial, state: 'in-service', secretHash: 'unused', secretRotatedAt: now, createdAt: now, updatedAt: now, power: 'mains' }).run();
    }
    const ingest = new Ingest({
      sqlite: store.sqlite,
      states: new DeviceStates(store.sqlite),
      config: loadConfig({}).ingest,
      log,
      metrics: createMetrics(),
      onCommitted: () => undefined,
    });
    const { proc, ready } = await startSim(['--map', 'bed-exit-controller', '--tcp-port', '0']);
    link = startModbusLink({
      link: { transport: 'tcp', host: '127.0.0.1', port: ready.port as number },
      unitId: 1,
      map: loadRegisterMap('bed-exit-controller'),
      pollMs: 50,
      timeoutMs: 500,
      retry: { initialMs: 50, maxMs: 200, failuresBeforeCommLost: 3, jitter: 0 },
      deviceFor: deviceForChannels({ deviceId: 'ctl', channels: { '2': 'mat-2' } }),
      sink: ingest,
      log,
      linkDeviceId: 'ctl',
    });
    const rows = () => store!.sqlite.prepare('select device_id, type, source, life_safety, data from observations order by id').all() as Row[];
    await waitFor('the baseline', () => link!.stats().okPolls >= 2 || undefined);
    await proc.send('point bed-2-exit 0');
    await waitFor('the bed exit row', () => rows().length >= 1 || undefined);
    await proc.send('point bed-2-exit 1');
    await waitFor('the restore row', () => rows().length >= 2 || undefined);
    await proc.kill('SIGKILL');
    await waitFor('the comm-lost row', () => rows().some((r) => r.type === 'comm-lost') || undefined);
    await link.close();
    link = undefined;
    ingest.close();
    store.close();

    // a fresh connection to the file sees what the poller was told was durable
    store = openStore(file);
    const durable = rows();
    expect(durable.map((r) => [r.device_id, r.type, r.source, r.life_safety])).toEqual([
      ['mat-2', 'bed-exit', 'modbus', 1],
      ['mat-2', 'bed-exit', 'modbus', 1],
      ['ctl', 'comm-lost', 'modbus', 0],
    ]);
    expect(JSON.parse(durable[0]!.data)).toMatchObject({ detail: { table: 'input', register: 0, bit: 1, value: 0, unitId: 1, channel: 2 } });
    expect(JSON.parse(durable[1]!.data)).toMatchObject({ restore: true });
  });
});
