// Statements of one connection, prepared once per SQL text and kept (least recently used out). For the list queries
// whose text depends on the filter (which conditions, how many units in a scope): drizzle's `toSQL()` gives the text
// and its parameters, and a page read with them prepared a new statement on every request (~30-60 µs of SQLite's
// parser and planner on the main thread, before the rows). The bound keeps a caller with many scope shapes from
// growing it; a statement pushed out is prepared again when next needed.
import type Database from 'better-sqlite3';
import { LRUCache } from 'lru-cache';

/** how many statement texts a cache keeps: the list filters' shapes in use at once, with room */
export const STATEMENTS_KEPT = 128;

/** what a statement's rows are: objects, the first column alone (`pluck`) or arrays (`raw`) — part of its key */
export type RowShape = 'objects' | 'pluck' | 'raw';
export type StatementCache = (text: string, shape: RowShape) => Database.Statement;

export function statementCache(sqlite: Database.Database, max = STATEMENTS_KEPT): StatementCache {
  const kept = new LRUCache<string, Database.Statement>({ max });
  return (text, shape) => {
    // a statement's shape is a setting of the statement: one text read two ways is two statements
    const key = `${shape}\u0000${text}`;
    let stmt = kept.get(key);
    if (!stmt) {
      stmt = sqlite.prepare(text);
      if (shape === 'pluck') stmt.pluck();
      else if (shape === 'raw') stmt.raw();
      kept.set(key, stmt);
    }
    return stmt;
  };
}
