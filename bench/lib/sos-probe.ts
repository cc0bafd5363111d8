// An SOS device for the benches that time what an alarm waits while something else runs (bench/lists.ts,
// bench/api-flood.ts): provisioned through the API, connected over real MQTT, publishing one SOS (QoS 1) every 10 ms,
// one in flight, and timing each PUBACK.
import mqtt from 'mqtt';

/** the admin's token (POST /api/auth/login) */
export async function loginAdmin(base: string, password: string): Promise<string> {
  const res = await fetch(`${base}/api/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }),
  });
  return (await res.json() as { token: string }).token;
}

export interface SosTimes<T> {
  /** what `during` answered, and how long it took (ms) */
  answer: T;
  ms: number;
  /** PUBACK times (ms) while it ran */
  p50: number;
  p99: number;
  max: number;
  count: number;
}

export async function sosProbe(base: string, token: string, mqttPort: number, serial: string) {
  const sos = await fetch(`${base}/api/devices`, {
    method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'call-phone', serial }),
  }).then((r) => r.json()) as { id: string; secret: string };
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { clientId: sos.id, username: sos.id, password: sos.secret, reconnectPeriod: 0 });
  let seq = 0;
  return {
    /** one SOS every 10 ms (one in flight) while `what` runs */
    async during<T>(what: () => Promise<T>): Promise<SosTimes<T>> {
      const waits: number[] = [];
      let done = false;
      const sender = (async () => {
        while (!done) {
          const t0 = performance.now();
          await c.publishAsync(`devices/${sos.id}/events`, JSON.stringify({ ts: Date.now(), seq: ++seq, type: 'sos' }), { qos: 1 });
          waits.push(performance.now() - t0);
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      const t0 = performance.now();
      const answer = await what();
      const ms = performance.now() - t0;
      done = true;
      await sender;
      waits.sort((a, b) => a - b);
      const q = (f: number) => waits[Math.min(waits.length - 1, Math.floor(f * waits.length))] ?? NaN;
      return { answer, ms, p50: q(0.5), p99: q(0.99), max: waits.at(-1) ?? NaN, count: waits.length };
    },
    close: () => c.endAsync(),
  };
}
