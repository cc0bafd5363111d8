import { integer, text } from 'drizzle-orm/sqlite-core';

/** epoch milliseconds; SQLite integers are 64-bit */
export const ms = (name: string) => integer(name, { mode: 'number' });
/** JSON stored as text, typed on the way in and out */
export const json = <T>(name: string) => text(name, { mode: 'json' }).$type<T>();
