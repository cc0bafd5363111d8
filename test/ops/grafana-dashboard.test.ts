// Issue 13 §3: the shipped Grafana dashboard queries metrics that exist. Every metric name in every panel's PromQL
// must be a family (or a histogram's _bucket/_sum/_count) on /metrics of a running gateway, and every label a query
// filters or groups by must be one that family carries.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { familyOf, scrape, type Exposition } from './helpers.js';

interface Panel { title: string; type: string; targets?: { expr: string }[]; panels?: Panel[] }
const dashboard = JSON.parse(readFileSync(resolve(import.meta.dirname, '../../docs/grafana-dashboard.json'), 'utf8')) as { panels: Panel[]; templating: { list: { query?: unknown }[] } };

const queries: { panel: string; expr: string }[] = [];
for (const p of dashboard.panels.flatMap((x) => [x, ...(x.panels ?? [])])) for (const t of p.targets ?? []) queries.push({ panel: p.title, expr: t.expr });
for (const v of dashboard.templating.list) if (typeof v.query === 'string' && v.query.startsWith('label_values(')) queries.push({ panel: 'variables', expr: v.query });

/** Metric selectors in a query: a name directly followed by `{`, or a bare name as label_values' argument. */
function selectors(expr: string): { name: string; labels: string[] }[] {
  const out = [...expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}/g)].map(([, name, body]) => ({
    name: name!, labels: [...body!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((m) => m[1]!),
  }));
  const lv = /^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,/.exec(expr);
  if (lv) out.push({ name: lv[1]!, labels: [] });
  return out;
}

describe('docs/grafana-dashboard.json', () => {
  let t: TestGateway;
  let metrics: Exposition;
  beforeAll(async () => {
    t = await startTestGateway();
    // some traffic, so that labelled families have samples whose labels can be checked
    const dev = await t.provision();
    await t.api('GET', `/api/devices/${dev.id}`);
    metrics = await scrape(t.http);
  }, 60_000);
  afterAll(async () => {
    await t?.stop();
  });

  it('covers the alarm path, ingest, connections and storage', () => {
    const rows = dashboard.panels.filter((p) => p.type === 'row').map((p) => p.title);
    expect(rows).toEqual(['Alarm path', 'Ingest', 'Connections', 'Storage and process']);
    expect(queries.length).toBeGreaterThan(20);
  });

  it('queries only metrics the gateway exposes, by labels they carry', () => {
    const problems: string[] = [];
    // labels Prometheus adds when it scrapes, and the histogram bucket bound
    const scrapeLabels = new Set(['job', 'instance', 'le']);
    for (const { panel, expr } of queries) {
      const found = selectors(expr);
      if (!found.length) problems.push(`${panel}: no metric in ${expr}`);
      for (const { name, labels } of found) {
        const family = familyOf(name, metrics.types);
        if (!family) {
          problems.push(`${panel}: ${name} is not on /metrics`);
          continue;
        }
        const seen = new Set(metrics.samples.filter((s) => familyOf(s.name, metrics.types) === family).flatMap((s) => Object.keys(s.labels)));
        const declared = [...labels, ...[...expr.matchAll(/by \(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((l) => l.trim()))];
        if (!seen.size) continue; // no sample yet (a counter never incremented): its labels cannot be read from the text
        for (const l of declared) if (!scrapeLabels.has(l) && !seen.has(l) && found.length === 1) problems.push(`${panel}: ${name} has no label ${l}`);
      }
    }
    expect(problems).toEqual([]);
  });
});
