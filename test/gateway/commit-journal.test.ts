import { describe, expect, it } from 'vitest';
import { Counter, Registry } from 'prom-client';
import { CommitJournal, CountSeries } from '../../gateway/commit-journal.js';

async function values(registry: Registry): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const m of await registry.getMetricsAsJSON()) {
    for (const v of m.values) out[`${m.name}{${Object.entries(v.labels).map(([k, l]) => `${k}=${l}`).join(',')}}`] = v.value;
  }
  return out;
}

function setup() {
  const registry = new Registry();
  const counter = new Counter({ name: 't_total', help: 't', labelNames: ['source', 'class', 'result'] as const, registers: [registry] });
  const series = new CountSeries(counter, (source, cls, result) => ({ source, class: cls, result }));
  return { registry, series, journal: new CommitJournal() };
}

const noError = (err: unknown) => { throw err; };

describe('the commit journal', () => {
  it('counts a committed batch once per series, after settle, and runs its commit actions', async () => {
    const { registry, series, journal } = setup();
    const ran: string[] = [];
    for (let i = 0; i < 3; i++) journal.count(series.at('mqtt', 'other', 'state'));
    journal.count(series.at('mqtt', 'alarm', 'stored'));
    journal.whenCommitted(() => ran.push('acked'));
    expect(series.at('mqtt', 'other', 'state')).toBe(series.at('mqtt', 'other', 'state'));
    journal.committed();
    // owed, not yet counted: settle is where a batch's answers go out
    expect(await values(registry)).toEqual({});
    expect(ran).toEqual([]);
    journal.settle(noError);
    expect(await values(registry)).toEqual({
      't_total{source=mqtt,class=other,result=state}': 3,
      't_total{source=mqtt,class=alarm,result=stored}': 1,
    });
    expect(ran).toEqual(['acked']);
    // nothing is owed twice
    journal.settle(noError);
    expect((await values(registry))['t_total{source=mqtt,class=other,result=state}']).toBe(3);
  });

  it('rolls back to a mark: undoes newest first and forgets the counts and actions after it, keeps those before', async () => {
    const { registry, series, journal } = setup();
    const undone: string[] = [];
    const ran: string[] = [];
    journal.count(series.at('mqtt', 'other', 'state'));
    journal.onRollback((x: string) => undone.push(x), 'first');
    journal.whenCommitted(() => ran.push('first'));
    const mark = journal.mark;
    journal.count(series.at('mqtt', 'other', 'state'));
    journal.onRollback((x: string) => undone.push(x), 'second');
    journal.whenCommitted(() => ran.push('second'));
    journal.onRollback(() => undone.push('third'));
    journal.rollBack(mark, noError);
    expect(undone).toEqual(['third', 'second']);
    expect(journal.mark).toBe(mark);
    journal.committed();
    journal.settle(noError);
    expect(ran).toEqual(['first']);
    expect(await values(registry)).toEqual({ 't_total{source=mqtt,class=other,result=state}': 1 });
    // committed: nothing is undone any more
    journal.rollBack(0, noError);
    expect(undone).toEqual(['third', 'second']);
  });

  it('a whole batch rolled back counts nothing; what a failed batch owed is forgotten', async () => {
    const { registry, series, journal } = setup();
    journal.count(series.at('dc09', 'alarm', 'stored'));
    journal.rollBack(0, noError);
    journal.committed();
    journal.settle(noError);
    expect(await values(registry)).toEqual({});
    journal.count(series.at('dc09', 'alarm', 'stored'));
    journal.whenCommitted(() => { throw new Error('must not run'); });
    journal.committed();
    journal.forgetOwed();
    journal.settle(noError);
    expect(await values(registry)).toEqual({});
    // and the series starts again from nothing
    journal.count(series.at('dc09', 'alarm', 'stored'));
    journal.committed();
    journal.settle(noError);
    expect(await values(registry)).toEqual({ 't_total{source=dc09,class=alarm,result=stored}': 1 });
  });

  it('an undo or an action that throws is reported and the others still run', () => {
    const { journal } = setup();
    const errors: string[] = [];
    const done: string[] = [];
    journal.onRollback(() => done.push('a'));
    journal.onRollback(() => { throw new Error('undo broke'); });
    journal.rollBack(0, (err) => errors.push((err as Error).message));
    journal.whenCommitted(() => { throw new Error('action broke'); });
    journal.whenCommitted(() => done.push('b'));
    journal.committed();
    journal.settle((err) => errors.push((err as Error).message));
    expect(errors).toEqual(['undo broke', 'action broke']);
    expect(done).toEqual(['a', 'b']);
  });
});
