// Issue 13 §3: the API is browsable at /docs (swagger-ui), every route has a summary, the CSV import shows its text/csv
// body and answer, the routes without a bearer requirement say so, /ws is described; /docs follows http.docsPublic.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

type Operation = { summary?: string; security?: unknown[]; requestBody?: { content?: Record<string, unknown> }; responses?: Record<string, { content?: Record<string, unknown> }> };
type OpenApi = { paths: Record<string, Record<string, Operation>>; tags?: { name: string; description?: string }[]; info: { description?: string } };

describe('API documentation, admins only (the default)', () => {
  let t: TestGateway;
  let doc: OpenApi;
  beforeAll(async () => {
    t = await startTestGateway();
    const res = await t.api('GET', '/docs/json');
    expect(res.status).toBe(200);
    doc = res.body as OpenApi;
  }, 60_000);
  afterAll(async () => {
    await t?.stop();
  });

  it('every route in the OpenAPI document has a summary', () => {
    const missing: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) if (!op.summary?.trim()) missing.push(`${method.toUpperCase()} ${path}`);
    }
    expect(Object.keys(doc.paths).length).toBeGreaterThan(20);
    expect(missing).toEqual([]);
  });

  it('the CSV import takes text/csv and answers text/csv', () => {
    const op = doc.paths['/api/devices/import']!.post!;
    expect(Object.keys(op.requestBody?.content ?? {})).toContain('text/csv');
    const ok = Object.entries(op.responses ?? {}).filter(([code]) => code.startsWith('2'));
    expect(ok.some(([, r]) => Object.keys(r.content ?? {}).includes('text/csv'))).toBe(true);
  });

  it('login, health and metrics carry no bearer requirement; the rest do', () => {
    for (const [path, method] of [['/api/auth/login', 'post'], ['/healthz', 'get'], ['/readyz', 'get'], ['/metrics', 'get']] as const) {
      expect(doc.paths[path]![method]!.security, `${method} ${path}`).toEqual([]);
    }
    expect(doc.paths['/api/devices']!.get!.security).toBeUndefined(); // the document-wide bearer requirement
  });

  it('/ws is described, pointing to docs/websocket.md', () => {
    const ws = doc.tags?.find((x) => x.name === 'websocket');
    expect(ws?.description).toMatch(/\/ws/);
    expect(ws?.description).toMatch(/docs\/websocket\.md/);
    expect(doc.info.description).toMatch(/\/ws/);
  });

  it('the UI page loads for an admin, and is refused without a token', async () => {
    const anonymous = await fetch(`${t.http}/docs`);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { message: string }).message).toMatch(/http\.docsPublic/);
    const token = await t.token();
    const page = await fetch(`${t.http}/docs/static/index.html`, { headers: { authorization: `Bearer ${token}` } });
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/swagger-ui/i);
    const redirect = await fetch(`${t.http}/docs`, { headers: { authorization: `Bearer ${token}` }, redirect: 'manual' });
    expect([200, 302]).toContain(redirect.status);
  });
});

describe('API documentation with http.docsPublic', () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startTestGateway({ http: { port: 0, host: '127.0.0.1', docsPublic: true } });
  }, 60_000);
  afterAll(async () => {
    await t?.stop();
  });

  it('the UI page and its document load without a token', async () => {
    const page = await fetch(`${t.http}/docs`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toMatch(/swagger-ui/i);
    expect((await fetch(`${t.http}/docs/json`)).status).toBe(200);
  });
});
