// Text a device or a hostile client chose, as the stores keep it. PostgreSQL's text (and jsonb) cannot hold a NUL
// character, and SQLite can; a NUL is therefore written as U+2400 "␀" by both engines (gateway/*-store.ts,
// core/audit-store.ts), so a row reads the same wherever it was stored, and none is refused by one engine and kept by
// the other. Applied to text a device or client chose only: a refusal's first bytes, device id, topic and reason; an
// unreadable message's reason (which quotes the parser, which quotes the bytes); a command answer's error; an audit
// entry's actor, action and target.
const NUL = '\u0000';
const SHOWN = '\u2400';

export function storedText<T extends string | null>(text: T): T {
  return (text !== null && text.includes(NUL) ? text.replaceAll(NUL, SHOWN) : text) as T;
}

/** whether an id a device sent can be one the gateway gave out (its ids never hold a NUL; PostgreSQL cannot compare one) */
export const storableId = (id: string): boolean => !id.includes(NUL);
