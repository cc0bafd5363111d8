// Every shipped scenario, played against the real gateway (child process): what they promise in
// docs/simulator.md holds for the gateway in this repository.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayApi } from '../../firmware-sim/api.js';
import { loadScenario } from '../../firmware-sim/scenario/parse.js';
import { runScenario } from '../../firmware-sim/scenario/run.js';
import { REPO, removeDir, startGateway, type GatewayProcess } from './helpers/gateway.js';

let gw: GatewayProcess;
let api: GatewayApi;

beforeAll(async () => {
  gw = await startGateway();
  api = await GatewayApi.login(gw.apiUrl, 'admin', gw.password);
}, 120_000);

afterAll(async () => {
  await gw?.stop();
  if (gw) removeDir(gw.dataDir);
});

const SHIPPED = ['sos', 'fall-cancel', 'fall-no-cancel', 'wander', 'silent-fall-sensor', 'storm'];

// all at once against the one gateway, as several test engineers would: each scenario provisions its own devices and
// judges only them, and most of each is waiting (a fall's cancel window, a sensor's silence, a reconnect back-off)
describe.concurrent('shipped scenarios against the real gateway', () => {
  for (const name of SHIPPED) {
    it(`${name}.yaml passes`, async ({ expect }) => {
      const scenario = await loadScenario(join(REPO, 'scenarios', `${name}.yaml`));
      const { report } = await runScenario({ scenario, api, mqttUrl: gw.mqttUrl });
      const failed = report.expectations.filter((e) => !e.passed).map((e) => `line ${e.line}: ${e.text} — ${e.detail}`);
      expect([...failed, ...report.notes]).toEqual([]);
      expect(report.passed).toBe(true);
      expect(report.expectations.length).toBeGreaterThan(0);
    }, 180_000);
  }
});
