// Factory CSVs in and credentials CSVs out, without holding the event loop: the text is parsed by csv-parse in small
// pieces, rows are checked and hashed in slices of a few milliseconds, and every slice yields to the alarm path
// (setImmediate) before the next. What a slice may cost is IMPORT_SLICE_MS.
import { parse } from 'csv-parse';
import { stringify } from 'csv-stringify/sync';
import { DEVICE_KINDS, type DeviceKind } from '../core/contracts.js';
import { ValidationError } from '../core/errors.js';
import { yieldToWriter } from '../core/write-turn.js';

/** The longest a slice of import work may hold the event loop before it yields. */
export const IMPORT_SLICE_MS = 8;
/** At most this many devices per import (a factory delivery; split bigger ones). */
export const IMPORT_MAX_ROWS = 50_000;
/** The CSV body limit (50,000 lines of the longest valid fields fit: serial 64, model 64, firmware 64, kind, power). */
export const IMPORT_MAX_BYTES = 16 * 1024 * 1024;
/** At most this many problems carry their reason; every bad line is still named by number in `badLines`. */
const MAX_REASONS = 5000;

export const CSV_COLUMNS = ['serial', 'kind', 'model', 'firmware', 'power'] as const;

export interface ImportRow {
  line: number;
  serial: string;
  kind: DeviceKind;
  model?: string;
  firmware?: string;
  power?: 'battery' | 'mains';
}

export const yieldToLoop = async (): Promise<void> => {
  await new Promise<void>((resolve) => setImmediate(resolve));
  // the writer thread first if it wants the database's write lock (core/write-turn.ts)
  await yieldToWriter();
};

/**
 * Run `fn` over `items` in slices of at most ~`budgetMs`, yielding to the event loop between slices. `fn` may run
 * several items per call (it gets the index to start at and the deadline, and returns the next index), so that a
 * slice can be one short transaction.
 */
export async function inSlices(
  count: number, fn: (from: number, deadline: number) => number,
  o: {
    budgetMs?: number;
    /** awaited before each slice (a slice that writes: until the write lock is free, core/db.ts whenFree) */
    before?: () => Promise<void>;
    /** awaited between slices, after the turn of the event loop (not before the first: one slice waits for nothing) */
    between?: () => Promise<void>;
  } = {},
): Promise<void> {
  const budgetMs = o.budgetMs ?? IMPORT_SLICE_MS;
  let i = 0;
  while (i < count) {
    if (o.before) await o.before();
    const next = fn(i, performance.now() + budgetMs);
    if (next <= i) throw new Error('inSlices: a slice made no progress');
    i = next;
    if (i < count) {
      await yieldToLoop();
      if (o.between) await o.between();
    }
  }
}

/** `for (i from..count) each(i)` until the deadline; the time is read every 32 items. Returns the next index. */
export function untilDeadline(from: number, count: number, deadline: number, each: (i: number) => void): number {
  let i = from;
  while (i < count) {
    each(i++);
    if ((i & 31) === 0 && performance.now() >= deadline) break;
  }
  return i;
}

/** A cell a spreadsheet would run as a formula (CWE-1236): = + - @, or a tab or CR that some readers strip first. */
export const FORMULA_RE = /^[=+\-@\t\r]/;
const CONTROL_RE = /[\u0000-\u001f\u007f]/;
const SERIAL_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{2,63}$/;

/** Problems of one text field, as the JSON API would find them (≤ 64 characters), plus formulas and control characters. */
function textProblem(name: string, value: string): string | undefined {
  if (value.length > 64) return `${name} is ${value.length} characters long; at most 64`;
  if (FORMULA_RE.test(value)) return `${name} "${value.slice(0, 20)}" starts with ${JSON.stringify(value[0])}, which a spreadsheet would run as a formula: remove it`;
  if (CONTROL_RE.test(value)) return `${name} contains a control character`;
  return undefined;
}

/**
 * Parse and check a factory CSV (`serial,kind[,model,firmware,power]` with a header line; quoted fields, an Excel
 * byte-order mark and `#` comment lines are fine). All or nothing: any problem throws one ValidationError naming every
 * bad line (its line number in the file).
 */
export async function parseDeviceCsv(text: string, defaultKind?: DeviceKind): Promise<ImportRow[]> {
  const records = await parseCsvSliced(text);
  if (records.length === 0) {
    throw new ValidationError('the CSV is empty: send a header line "serial,kind,model,firmware,power" and one device per line');
  }
  const header = records[0]!.record.map((h) => h.trim().toLowerCase());
  const unknown = header.filter((h) => !(CSV_COLUMNS as readonly string[]).includes(h));
  if (unknown.length) {
    throw new ValidationError(`the CSV header names unknown column(s) ${unknown.map((u) => `"${u}"`).join(', ')}; the columns are ${CSV_COLUMNS.join(', ')} (serial is required; kind unless ?kind= is given)`);
  }
  const col = (name: string) => header.indexOf(name);
  if (col('serial') < 0) throw new ValidationError('the CSV header must name a "serial" column (e.g. "serial,kind,model,firmware")');
  if (col('kind') < 0 && !defaultKind) throw new ValidationError('the CSV needs a "kind" column, or ?kind= in the URL');
  if (records.length - 1 > IMPORT_MAX_ROWS) throw new ValidationError(`at most ${IMPORT_MAX_ROWS.toLocaleString('en')} devices per import (this file has ${records.length - 1}): split the file`);

  const problems: string[] = [];
  const badLines: number[] = [];
  const seen = new Map<string, number>();
  const rows: ImportRow[] = [];
  await inSlices(records.length - 1, (from, deadline) => untilDeadline(from, records.length - 1, deadline, (i) => {
    const { record, line } = records[i + 1]!;
    const get = (name: string) => {
      const c = col(name);
      const v = c >= 0 ? record[c] : undefined;
      return v === undefined || v === '' ? undefined : v;
    };
    const mine: string[] = [];
    const serial = get('serial') ?? '';
    const kind = (get('kind') ?? defaultKind) as DeviceKind;
    const model = get('model');
    const firmware = get('firmware');
    const power = get('power');
    if (record.length > header.length) mine.push(`${record.length} cells but the header has ${header.length} columns (quote a cell that contains a comma)`);
    if (!DEVICE_KINDS.includes(kind)) mine.push(`kind "${String(kind ?? '').slice(0, 40)}" is not one of ${DEVICE_KINDS.join(', ')}`);
    if (!SERIAL_RE.test(serial)) mine.push(`serial "${serial.slice(0, 70)}" must be 3–64 letters, digits or . _ : -`);
    else if (seen.has(serial)) mine.push(`serial "${serial}" appears twice (also on line ${seen.get(serial)})`);
    else seen.set(serial, line);
    for (const [name, value] of [['model', model], ['firmware', firmware]] as const) {
      const p = value === undefined ? undefined : textProblem(name, value);
      if (p) mine.push(p);
    }
    if (power !== undefined && power !== 'battery' && power !== 'mains') mine.push(`power "${power.slice(0, 20)}" must be battery or mains`);
    if (mine.length) {
      badLines.push(line);
      for (const m of mine) if (problems.length < MAX_REASONS) problems.push(`line ${line}: ${m}`);
      return;
    }
    rows.push({
      line, serial, kind,
      ...(model !== undefined ? { model } : {}),
      ...(firmware !== undefined ? { firmware } : {}),
      ...(power !== undefined ? { power: power as 'battery' | 'mains' } : {}),
    });
  }));
  if (badLines.length) {
    const shown = problems.slice(0, 50).join('; ');
    const more = badLines.length > 50 ? ` … ${badLines.length} bad lines in all, listed in details.badLines` : '';
    throw new ValidationError(`nothing was imported: ${shown}${more}`, { problems, badLines });
  }
  return rows;
}

/** csv-parse fed 64 KiB at a time, a turn of the event loop between pieces. */
async function parseCsvSliced(text: string): Promise<{ record: string[]; line: number }[]> {
  const out: { record: string[]; line: number }[] = [];
  const parser = parse({
    bom: true,
    trim: true,
    skip_empty_lines: true,
    relax_column_count: true,
    relax_quotes: true, // a quote inside an unquoted cell is read as text, then judged like any other value
    comment: '#',
    comment_no_infix: true,
    info: true,
    max_record_size: 4096,
  });
  let failure: Error | undefined;
  parser.on('readable', () => {
    let r: { record: string[]; info: { lines: number } } | null;
    while ((r = parser.read()) !== null) {
      if (out.length > IMPORT_MAX_ROWS + 1) continue; // counted, refused below; not kept
      out.push({ record: r.record, line: r.info.lines });
    }
  });
  parser.on('error', (err) => { failure ??= err; });
  const done = new Promise<void>((resolve) => parser.once('end', resolve).once('error', () => resolve()));
  const PIECE = 64 * 1024;
  for (let at = 0; at < text.length && !failure; at += PIECE) {
    parser.write(text.slice(at, at + PIECE));
    await yieldToLoop();
  }
  if (!failure) parser.end();
  await done;
  if (failure) {
    throw new ValidationError(`the CSV cannot be read: ${failure.message.replace(/^Invalid Record Length: /, '')} — nothing was imported`);
  }
  if (out.length > IMPORT_MAX_ROWS + 1) throw new ValidationError(`at most ${IMPORT_MAX_ROWS.toLocaleString('en')} devices per import: split the file`);
  return out;
}

/** A cell that a spreadsheet would run as a formula gets a leading ' (OWASP CSV injection). */
export function escapeFormula(value: string): string {
  return FORMULA_RE.test(value) ? `'${value}` : value;
}

/**
 * CSV text of `rows` in pieces of a few hundred lines, each an await away from the next: a generator to hand to
 * Readable.from(), so that a 50,000-line answer streams instead of holding the loop. Cells are escaped (quotes,
 * commas, line breaks by csv-stringify; formulas by escapeFormula).
 */
export async function* csvPieces(columns: readonly string[], rows: readonly (readonly (string | null | undefined)[])[]): AsyncGenerator<string> {
  yield stringify([columns as string[]]);
  const PIECE = 500;
  for (let i = 0; i < rows.length; i += PIECE) {
    const piece = rows.slice(i, i + PIECE).map((r) => r.map((c) => (c == null ? '' : escapeFormula(c))));
    yield stringify(piece);
    await yieldToLoop();
  }
}
