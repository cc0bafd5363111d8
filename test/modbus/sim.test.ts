// The simulated device itself, in process, spoken to by modbus-serial's client.
import { afterEach, describe, expect, it } from 'vitest';
import ModbusRTUModule from 'modbus-serial';
import { loadSimMap, ModbusDeviceSim } from '../../firmware-sim/modbus/server.js';

const ModbusRTU = ModbusRTUModule.default ?? (ModbusRTUModule as unknown as typeof ModbusRTUModule.default);
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function serve(mapName: string) {
  const sim = new ModbusDeviceSim(loadSimMap(mapName), { unitId: 1 });
  const port = await sim.listenTcp({ port: 0 });
  cleanup.push(() => sim.stop());
  const client = new ModbusRTU();
  await client.connectTCP('127.0.0.1', { port });
  client.setID(1);
  client.setTimeout(2000);
  cleanup.push(() => new Promise<void>((r) => client.close(() => r())));
  return { sim, client };
}

describe('simulated Modbus device', () => {
  it('starts every point at its normal value and serves the map over TCP', async () => {
    const { sim, client } = await serve('bed-exit-controller');
    // all four beds occupied, no fault, battery full
    expect((await client.readInputRegisters(0, 3)).data).toEqual([0b1111, 0, 100]);
    sim.setPoint('bed-2-exit', 0);
    sim.setBit('input', 1, 1, 9);
    expect((await client.readInputRegisters(0, 2)).data).toEqual([0b1101, 1 << 9]);
  });

  it('answers exception 02 beyond its tables and for addresses told to fail', async () => {
    const { sim, client } = await serve('pull-cord-panel');
    await expect(client.readCoils(0, 7)).rejects.toMatchObject({ modbusCode: 2 });
    sim.failAddress('discrete', 9, 4);
    await expect(client.readDiscreteInputs(8, 2)).rejects.toMatchObject({ modbusCode: 4 });
    sim.clearFailure('discrete', 9);
    expect((await client.readDiscreteInputs(8, 2)).data.slice(0, 2)).toEqual([true, false]);
  });

  it("a write to a point's reset register clears the latched alarm, as the map declares", async () => {
    const { sim, client } = await serve('gas-smoke-detector');
    sim.setPoint('smoke-alarm', 1);
    sim.setPoint('co-ppm', 62.5);
    expect((await client.readHoldingRegisters(0, 2)).data).toEqual([625, 1]);
    await client.writeRegister(6, 1);
    expect(sim.get('holding', 1) & 1).toBe(0);
    // the pull-cord panel's reset is its latch coil itself
    const panel = await serve('pull-cord-panel');
    panel.sim.setPoint('cord-3', 1);
    await panel.client.writeCoil(2, false);
    expect(panel.sim.get('coil', 2)).toBe(0);
  });
});
