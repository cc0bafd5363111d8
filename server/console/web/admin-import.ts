// CSV import of a factory delivery (POST /api/devices/import): a file or pasted text in, and either every bad line
// with its field and reason (nothing is imported then: all or nothing), or the devices created with their one-time
// secrets, to be downloaded now as CSV. Admins and technicians (server/routes/devices.ts).
import { parse } from 'csv-parse/browser/esm/sync';
import { DEVICE_KINDS } from '../../../core/contracts.js';
import { ApiError, postText } from './api.js';
import type { Ctx } from './context.js';
import { h } from './dom.js';

const COLUMNS = ['serial', 'kind', 'model', 'firmware', 'power'];
const EXAMPLE = 'serial,kind,model,firmware,power\nCP-2024-0001,call-phone,CP-200,1.4.2,battery\n';

export interface LineProblem { line: number | null; field: string; message: string }

/**
 * The server names each problem "line N: <reason>" (devices/import.ts) and, for serials already provisioned,
 * "line N: SERIAL" in one message (devices/registry.ts). The field is the column the reason starts with.
 */
export function lineProblems(err: ApiError): LineProblem[] {
  const d = (err.details ?? {}) as { problems?: unknown; badLines?: unknown; serials?: unknown };
  const problems = Array.isArray(d.problems) ? d.problems.filter((p): p is string => typeof p === 'string') : [];
  const out: LineProblem[] = problems.map((p) => {
    const m = /^line (\d+): (.*)$/s.exec(p);
    const message = m ? m[2]! : p;
    const word = /^(\w+)/.exec(message)?.[1] ?? '';
    return { line: m ? Number(m[1]) : null, field: COLUMNS.includes(word) ? word : message.includes('cells') ? '(columns)' : '', message };
  });
  if (!out.length && Array.isArray(d.badLines) && Array.isArray(d.serials)) {
    // already provisioned (409): the lines and serials come as two lists in the same order
    d.badLines.forEach((line, i) => out.push({ line: Number(line), field: 'serial', message: `serial "${String((d.serials as unknown[])[i])}" is already provisioned` }));
  }
  return out;
}

export function importView(ctx: Ctx, root: HTMLElement): () => void {
  root.append(h('div', { class: 'toolbar' }, h('h1', null, 'Import devices (CSV)')));
  if (!ctx.can('admin', 'technician')) {
    root.append(h('p', { class: 'notice error', 'data-not-allowed': '' },
      `Importing devices is for admins and technicians; you are logged in as ${ctx.api.user?.username} (${ctx.api.user?.role}).`));
    return () => undefined;
  }
  const file = h('input', { type: 'file', accept: '.csv,text/csv,text/plain', name: 'file' });
  const text = h('textarea', { name: 'csv', rows: 10, spellcheck: 'false', placeholder: EXAMPLE, class: 'mono', 'aria-label': 'CSV text' });
  const kind = h('select', { name: 'kind' }, h('option', { value: '' }, '(from the kind column)'), ...DEVICE_KINDS.map((k) => h('option', { value: k }, k)));
  const send = h('button', { type: 'submit', class: 'primary' }, 'Import');
  const status = h('p', { role: 'status', 'data-import-status': '' });
  const result = h('div', { 'data-import-result': '' });
  const form = h('form', { class: 'panel import-form' },
    h('p', null, 'A header line names the columns: ', h('code', null, COLUMNS.join(',')),
      ' (serial required; kind unless chosen below). Quoted cells, an Excel byte-order mark and # comment lines are fine. ',
      'All or nothing: one bad line and nothing is imported.'),
    h('div', { class: 'form' },
      h('label', { class: 'field' }, h('span', null, 'CSV file'), file),
      h('label', { class: 'field' }, h('span', null, 'kind for every line'), kind)),
    h('label', { class: 'field' }, h('span', null, 'or paste the CSV'), text),
    h('div', { class: 'actions' }, send), status);
  root.append(form, result);
  let download: string | null = null;
  const forget = () => { if (download) URL.revokeObjectURL(download); download = null; };

  file.addEventListener('change', async () => {
    const f = file.files?.[0];
    if (!f) return;
    if (f.size > 16 * 1024 * 1024) {
      status.textContent = `${f.name} is ${(f.size / 1048576).toFixed(1)} MiB; an import takes at most 16 MiB (50,000 lines): split the file`;
      status.className = 'error';
      return;
    }
    text.value = await f.text();
    status.className = 'muted';
    status.textContent = `${f.name}: ${text.value.split('\n').filter((l) => l.trim()).length - 1} line(s) after the header`;
  });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const csv = text.value;
    if (!csv.trim()) {
      status.className = 'error';
      status.textContent = 'choose a file or paste the CSV first';
      return;
    }
    send.disabled = true;
    status.className = 'muted';
    status.textContent = 'importing…';
    result.replaceChildren();
    forget();
    try {
      const answer = await postText(ctx.api, `/api/devices/import${kind.value ? `?kind=${encodeURIComponent(kind.value)}` : ''}`, csv);
      const rows = parse(answer.text, { columns: true, skip_empty_lines: true, bom: true }) as Record<'id' | 'serial' | 'kind' | 'secret', string>[];
      status.className = 'result ok';
      status.textContent = `${rows.length} device${rows.length === 1 ? '' : 's'} imported`;
      text.value = '';
      file.value = '';
      forget();
      download = showCreated(result, rows, answer.text);
    } catch (err) {
      status.className = 'error';
      if (err instanceof ApiError) {
        const problems = lineProblems(err);
        status.textContent = problems.length
          ? `Nothing was imported: ${problems.length} problem${problems.length === 1 ? '' : 's'} on ${new Set(problems.map((p) => p.line)).size} line(s). Correct them and import the whole file again.`
          : `Nothing was imported: ${err.message}`;
        if (problems.length) showProblems(result, problems);
      } else {
        status.textContent = `The import failed: ${(err as Error).message}`;
      }
    } finally {
      send.disabled = false;
    }
  });
  // the secrets leave memory with the page: the download link's copy too
  return forget;
}

function showProblems(box: HTMLElement, problems: LineProblem[]): void {
  box.replaceChildren(h('section', { class: 'panel' }, h('h2', null, 'Lines to correct'),
    h('div', { class: 'table-wrap' }, h('table', { class: 'fleet import-errors' },
      h('thead', null, h('tr', null, h('th', null, 'Line'), h('th', null, 'Field'), h('th', null, 'Problem'))),
      h('tbody', null, ...problems.map((p) => h('tr', { 'data-line': p.line ?? '' },
        h('td', { class: 'num' }, p.line ?? '—'), h('td', null, p.field || '—'), h('td', null, p.message))))))));
}

/** The created devices and the download of the server's CSV as it came; returns the object URL to revoke. */
function showCreated(box: HTMLElement, rows: Record<'id' | 'serial' | 'kind' | 'secret', string>[], csv: string): string {
  const url = URL.createObjectURL(new Blob([csv], { type: 'text/csv' }));
  const stamp = new Date().toISOString().slice(0, 19).replace(/[T:]/g, '-');
  const download = h('a', { class: 'button primary', href: url, download: `eldergate-devices-${stamp}.csv`, 'data-download': '' }, 'Download as CSV');
  box.replaceChildren(h('section', { class: 'panel secret' },
    h('p', { class: 'notice error', role: 'alert', 'data-secret-warning': '' },
      'These secrets are shown once. Download the CSV now and load each secret into its device: ',
      'the gateway keeps only a hash, and leaving this page loses them (a lost secret means rotating it on the device page).'),
    h('div', { class: 'actions' }, download),
    h('div', { class: 'table-wrap' }, h('table', { class: 'fleet import-created' },
      h('thead', null, h('tr', null, h('th', null, 'Device'), h('th', null, 'Serial'), h('th', null, 'Kind'), h('th', null, 'Secret'))),
      h('tbody', null, ...rows.map((r) => h('tr', { 'data-device': r.id },
        h('td', null, h('a', { href: `#/device/${encodeURIComponent(r.id)}` }, r.id)), h('td', null, r.serial), h('td', null, r.kind),
        h('td', { class: 'mono', 'data-secret': '' }, r.secret))))))));
  return url;
}
