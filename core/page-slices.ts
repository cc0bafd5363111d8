// A page of a list, read and built a slice at a time: each slice in a turn of the event loop of its own, so the sockets
// (every device's MQTT, the consoles' WebSockets) are read between slices. Measured before this: a 1,000-row page of
// devices or residents read whole through drizzle held the main thread ~12 ms for its rows alone, 20-50 ms with its
// state and its answer, and every socket with it (issue 10: "reads for the API must not block the alarm path").
import { sql, type Column } from 'drizzle-orm';
import type { SQLiteTable } from 'drizzle-orm/sqlite-core';
import type { Db } from './db.js';

/** rows read, given what they show and copied in one turn (~2-4 ms for devices with their state) */
export const PAGE_SLICE = 200;

/**
 * `build` over `items` PAGE_SLICE at a time, in order; from the second slice on, each after a setImmediate (after the
 * sockets are read; an answer from the writer thread alone would run the next slice in the turn that delivered it).
 */
export async function inPageSlices<I, R>(items: readonly I[], build: (slice: I[]) => R[] | Promise<R[]>, size = PAGE_SLICE): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) {
    if (i > 0) await new Promise((next) => setImmediate(next));
    for (const r of await build(items.slice(i, i + size))) out.push(r);
  }
  return out;
}

/**
 * A table's rows by their ids, in the order given (an id no longer there is left out), through one statement prepared
 * once with the ids as a JSON array: an IN list of the page's own length is a statement prepared per call, a quarter
 * of the time of a page's rows.
 */
export function rowsByIds<T extends SQLiteTable & { id: Column }>(db: Db, table: T): RowsByIds<T['$inferSelect'] & { id: string }> {
  type Row = T['$inferSelect'] & { id: string };
  const query = db.select().from(table as SQLiteTable).where(sql`${table.id} IN (SELECT value FROM json_each(${sql.placeholder('ids')}))`);
  let stmt: { all(p: { ids: string }): Row[] } | undefined;
  const read = (ids: readonly string[]): Row[] => {
    if (ids.length === 0) return [];
    stmt ??= query.prepare() as never;
    const byId = new Map(stmt!.all({ ids: JSON.stringify(ids) }).map((r) => [r.id, r] as const));
    return ids.flatMap((i) => byId.get(i) ?? []);
  };
  return Object.assign(read, { sql: query.toSQL().sql });
}

/** rowsByIds' reader, with the statement it runs (for a test of its query plan: one lookup by key per id) */
export type RowsByIds<Row> = ((ids: readonly string[]) => Row[]) & { readonly sql: string };
