// The live progress line of long runs: rewritten in place on a terminal, a plain line every few seconds when
// stdout is a file or a CI log (no escape codes in logs).
import { formatMs } from './core/duration.js';
import type { FleetStats } from './stats.js';

export interface Output {
  /** print a line (above the progress line on a terminal) */
  line(text: string): void;
  /** stop updating, leaving the last progress line in place */
  stop(): void;
}

export function progressText(s: FleetStats, total: number, elapsedMs: number): string {
  const p = s.puback.count ? `puback p50 ${formatMs(s.puback.quantile(0.5))} p99 ${formatMs(s.puback.quantile(0.99))}` : 'puback –';
  const a = s.ackCommand.count ? ` · help-coming p50 ${formatMs(s.ackCommand.quantile(0.5))} p99 ${formatMs(s.ackCommand.quantile(0.99))}` : '';
  const pending = s.alarmsSent - s.alarmsAcked;
  return (
    `[${(elapsedMs / 1000).toFixed(0).padStart(4)}s] connected ${s.connected}/${total}` +
    ` · alarms ${s.alarmsSent} sent, ${s.alarmsAcked} PUBACKed${pending > 0 ? ` (${pending} waiting)` : ''}` +
    `${s.resends ? ` · ${s.resends} resends` : ''} · ack-cmd ${s.ackCommands} · ${p}${a}` +
    `${s.droppedAlarms ? ` · ${s.droppedAlarms} ALARMS DROPPED` : ''}`
  );
}

/** start a progress display over `stats`; `total` may grow (a scenario's fleet appears after provisioning) */
export function startProgress(
  stats: () => { s: FleetStats; total: number } | null,
  opts: { stream?: NodeJS.WriteStream; tty?: boolean; plainEveryMs?: number } = {},
): Output {
  const out = opts.stream ?? process.stdout;
  const tty = opts.tty ?? Boolean(out.isTTY);
  const started = Date.now();
  let last = '';
  const render = () => {
    const cur = stats();
    if (!cur) return '';
    return progressText(cur.s, cur.total, Date.now() - started);
  };
  const draw = () => {
    last = render();
    if (!last) return;
    if (tty) out.write(`\r\x1b[2K${last.slice(0, (out.columns || 200) - 1)}`);
    else out.write(`${last}\n`);
  };
  const timer = setInterval(draw, tty ? 500 : (opts.plainEveryMs ?? 5000));
  timer.unref();
  return {
    line(text: string) {
      if (tty && last) out.write('\r\x1b[2K');
      out.write(`${text}\n`);
      if (tty && last) out.write(last.slice(0, (out.columns || 200) - 1));
    },
    stop() {
      clearInterval(timer);
      const final = render();
      if (final) out.write(tty ? `\r\x1b[2K${final}\n` : `${final}\n`);
    },
  };
}
