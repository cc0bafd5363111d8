// Issue 13 §3: /metrics by Prometheus' conventions, so stock dashboards and our own (docs/grafana-dashboard.json) work:
// standard process_* / nodejs_* names, `_total` only on counters, an HTTP histogram by route pattern, build info.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { familyOf, scrape } from './helpers.js';

describe('/metrics', () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startTestGateway();
  }, 60_000);
  afterAll(async () => {
    await t?.stop();
  });

  it('has the standard process and Node.js metrics, without our prefix', async () => {
    const { types } = await scrape(t.http);
    expect(types.get('process_cpu_seconds_total')).toBe('counter');
    expect(types.get('process_resident_memory_bytes')).toBe('gauge');
    expect(types.get('process_open_fds')).toBe('gauge');
    expect(types.get('nodejs_eventloop_lag_seconds')).toBe('gauge');
    expect(types.get('nodejs_heap_size_used_bytes')).toBe('gauge');
    expect([...types.keys()].filter((n) => n.startsWith('eldergate_process_'))).toEqual([]);
  });

  it('names `_total` only counters, and every sample belongs to a declared family', async () => {
    const { types, samples } = await scrape(t.http);
    for (const [name, type] of types) {
      if (type !== 'counter') expect(name, `a ${type} named like a counter`).not.toMatch(/_total$/);
      if (type === 'counter') expect(name, 'a counter without _total').toMatch(/_total$/);
    }
    for (const s of samples) expect(familyOf(s.name, types), `${s.name} has no # TYPE`).toBeDefined();
  });

  it('says which build is running', async () => {
    const { types, samples } = await scrape(t.http);
    expect(types.get('eldergate_build_info')).toBe('gauge');
    const info = samples.filter((s) => s.name === 'eldergate_build_info');
    expect(info).toHaveLength(1);
    expect(info[0]!.value).toBe(1);
    expect(info[0]!.labels.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(info[0]!.labels.commit).toMatch(/^([0-9a-f]{7,}|unknown)$/);
    expect(info[0]!.labels.node).toBe(process.version);
  });

  it('times HTTP requests by method, route pattern and status, never by the raw URL', async () => {
    const dev = await t.provision();
    expect((await t.api('GET', `/api/devices/${dev.id}`)).status).toBe(200);
    expect((await t.api('GET', '/api/devices/no-such-device')).status).toBe(404);
    expect((await fetch(`${t.http}/no/such/path/x7q`)).status).toBe(404);
    const { types, samples } = await scrape(t.http);
    expect(types.get('http_request_duration_seconds')).toBe('histogram');
    const counts = samples.filter((s) => s.name === 'http_request_duration_seconds_count');
    const find = (labels: Record<string, string>) => counts.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    expect(find({ method: 'GET', route: '/api/devices/:id', status_code: '200' })?.value).toBeGreaterThanOrEqual(1);
    expect(find({ method: 'GET', route: '/api/devices/:id', status_code: '404' })?.value).toBeGreaterThanOrEqual(1);
    expect(find({ method: 'POST', route: '/api/auth/login', status_code: '200' })?.value).toBeGreaterThanOrEqual(1);
    const routes = new Set(counts.map((s) => s.labels.route));
    for (const raw of [dev.id, 'no-such-device', 'x7q']) expect([...routes].some((r) => r!.includes(raw)), `${raw} in a route label`).toBe(false);
    expect(routes.has('unmatched')).toBe(true);
  });
});
