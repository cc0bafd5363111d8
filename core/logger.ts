import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** Secrets never reach the logs. Paths are fixed here, never taken from users. */
export const REDACT_PATHS = [
  'password',
  'secret',
  'token',
  '*.password',
  '*.secret',
  '*.token',
  '*.passwordHash',
  '*.secretHash',
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'req.query.token',
  'body.password',
  'body.secret',
];

export interface LoggerOptions {
  /**
   * Human-readable lines (pino-pretty) instead of JSON. Default: when stdout is a terminal and no destination is
   * given, so a person at a console reads the log and a service manager / log shipper gets one JSON object a line.
   */
  pretty?: boolean;
}

export function createLogger(level: string, destination?: DestinationStream, opts: LoggerOptions = {}): Logger {
  const pretty = opts.pretty ?? (destination === undefined && process.stdout.isTTY === true);
  const options = {
    level,
    // no base (no pid/hostname); `service` is the root child's binding (see oneKeyOnce)
    base: null,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (!pretty) return oneKeyOnce(pino(options, destination));
  // formatted in pino's worker thread (a transport), so colouring a line never takes time from the alarm path;
  // `service` and `pid`/`hostname` are the same on every line, left out to keep a terminal line short
  return oneKeyOnce(pino(options, pino.transport({
    target: 'pino-pretty',
    options: { destination: 1, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service', singleLine: false },
  }) as DestinationStream));
}

/**
 * pino appends a child's bindings to its parent's, so `log.child({ module: 'notify' }).child({ module: 'webhook' })`
 * wrote `"module":"notify","module":"webhook"` — a line with a key twice, which log shippers read differently (the
 * first, the last, or an error). A child that repeats a key of its parent is made from the root instead, with the
 * parent's bindings overridden (the innermost wins, as JSON.parse would read it) and the parent's level.
 * `bare` has no bindings; the logger handed out is its child with `service`.
 */
function oneKeyOnce(bare: Logger): Logger {
  const fromRoot = (b: Record<string, unknown>, o: Parameters<Logger['child']>[1]) => bare.child(b, o) as unknown as Logger;
  const root = fromRoot({ service: 'eldergate' }, {});
  const wrap = (l: Logger): Logger => {
    const plain = l.child.bind(l);
    let keys: Set<string> | undefined; // read on the first child (Fastify makes one per request; most never have one)
    l.child = ((bindings: Record<string, unknown>, options?: Parameters<Logger['child']>[1]) => {
      keys ??= new Set(Object.keys(l.bindings()));
      const clash = Object.keys(bindings).some((k) => keys!.has(k));
      return wrap(clash ? fromRoot({ ...l.bindings(), ...bindings }, { level: l.level, ...options }) : (plain(bindings, options) as unknown as Logger));
    }) as unknown as Logger['child'];
    return l;
  };
  return wrap(root);
}

/**
 * Repeated log lines, rate-bound (issue 14: one device's refused SUBSCRIBEs wrote 25× their bytes to the log; a flood
 * of failed CONNECTs wrote megabytes). Per (kind, subject) — a device or an address — at most `burst` lines per
 * window are written; the rest are counted, and the count is written once when the window ends: "… N more like this".
 * At most `maxKeys` subjects are tracked; beyond, the new ones share one bucket per kind, so memory stays bounded.
 */
export interface LogLimiter {
  warn(kind: string, subject: string | undefined, obj: Record<string, unknown>, msg: string): void;
  info(kind: string, subject: string | undefined, obj: Record<string, unknown>, msg: string): void;
  /** write the pending counts now (also done by a timer every window) */
  flush(): void;
  close(): void;
}

export interface LogLimiterOptions {
  burst: number;
  windowMs: number;
  maxKeys?: number;
  onSuppressed?: (kind: string) => void;
  now?: () => number;
}

export function createLogLimiter(log: Logger, o: LogLimiterOptions): LogLimiter {
  const maxKeys = o.maxKeys ?? 10_000;
  const now = o.now ?? Date.now;
  interface Bucket { kind: string; subject: string; level: 'warn' | 'info'; start: number; written: number; suppressed: number }
  const buckets = new Map<string, Bucket>();

  const report = (b: Bucket) => {
    if (b.suppressed > 0) {
      log[b.level]({ kind: b.kind, subject: b.subject, suppressed: b.suppressed, windowMs: o.windowMs }, `${b.suppressed} more "${b.kind}" lines not written (rate bound)`);
    }
  };
  const flush = () => {
    const t = now();
    for (const [key, b] of buckets) {
      if (t - b.start < o.windowMs) continue;
      report(b);
      buckets.delete(key);
    }
  };
  const write = (level: 'warn' | 'info', kind: string, subject: string | undefined, obj: Record<string, unknown>, msg: string) => {
    const t = now();
    let key = `${kind}\u0000${subject ?? ''}`;
    let b = buckets.get(key);
    if (b && t - b.start >= o.windowMs) {
      report(b);
      buckets.delete(key);
      b = undefined;
    }
    if (!b) {
      if (buckets.size >= maxKeys) {
        key = `${kind}\u0000*`;
        b = buckets.get(key);
      }
      if (!b) {
        b = { kind, subject: buckets.size >= maxKeys ? '*' : (subject ?? ''), level, start: t, written: 0, suppressed: 0 };
        buckets.set(key, b);
      }
    }
    if (b.written < o.burst) {
      b.written++;
      log[level](obj, msg);
      return;
    }
    b.suppressed++;
    o.onSuppressed?.(kind);
  };
  const timer = setInterval(() => {
    try {
      flush();
    } catch {
      /* a log write failing must not end the process */
    }
  }, o.windowMs);
  timer.unref();
  return {
    warn: (kind, subject, obj, msg) => write('warn', kind, subject, obj, msg),
    info: (kind, subject, obj, msg) => write('info', kind, subject, obj, msg),
    flush,
    close() {
      clearInterval(timer);
      for (const b of buckets.values()) report(b);
      buckets.clear();
    },
  };
}
