// What happens to an exception nothing caught (issue 14). Node's default is to print it and exit.
//
// Resuming after an arbitrary uncaught exception is unsafe: the code that threw stopped half-way, and whatever
// invariant it was keeping (a queue, a transaction, a timer heap) may be torn. Our alarm contract makes a restart
// safe instead — an alarm is acknowledged only after it is durable, devices resend what was not acknowledged,
// escalation catches up at start — so an unknown exception still ends the process, after a bounded attempt to
// close cleanly, and the supervisor (systemd Restart=always) starts it again within seconds.
//
// One class is different: a failed system call for want of a resource (EMFILE, ENFILE, ENOMEM, ENOBUFS, EAGAIN)
// carries `syscall`; the call failed as a whole and changed nothing, so there is no torn state, and exiting would turn
// an attacker's socket flood into an outage of every device. Those are logged (rate-bound), counted and survived.
// A promise rejected with no handler is a missed error report, not a torn invariant (the synchronous part had
// finished): logged and counted, never fatal.
import type { Logger } from './logger.js';

const RESOURCE_CODES = new Set(['EMFILE', 'ENFILE', 'ENOMEM', 'ENOBUFS', 'EAGAIN', 'ECONNRESET', 'EPIPE']);

export function isResourceError(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException | undefined;
  return Boolean(e && typeof e === 'object' && typeof e.code === 'string' && RESOURCE_CODES.has(e.code) && (e.syscall !== undefined || e.code === 'ENOMEM'));
}

export interface LastResortDeps {
  log: Logger;
  count(where: string): void;
  /** close what can be closed (the database first) before exiting */
  shutdown(): Promise<void>;
  exit?: (code: number) => void;
}

export function installLastResort(d: LastResortDeps): () => void {
  const exit = d.exit ?? ((code: number) => process.exit(code));
  let lastLog = 0;
  const logLimited = (obj: Record<string, unknown>, msg: string) => {
    const now = Date.now();
    if (now - lastLog < 5000) return;
    lastLog = now;
    try {
      d.log.error(obj, msg);
    } catch {
      /* no descriptor even for the log: the counter still has it */
    }
  };
  let dying = false;
  const onException = (err: Error) => {
    if (isResourceError(err)) {
      d.count('uncaught-resource-error');
      logLimited({ err }, 'out of a system resource (survived): a call failed and changed nothing; the gateway keeps running');
      return;
    }
    d.count('uncaught-exception');
    if (dying) return;
    dying = true;
    try {
      d.log.fatal({ err }, 'uncaught exception: closing and exiting so that the supervisor restarts a clean process');
    } catch {
      /* ignore */
    }
    const force = setTimeout(() => exit(70), 5000);
    force.unref();
    d.shutdown().then(() => exit(70), () => exit(70));
  };
  const onRejection = (reason: unknown) => {
    d.count('unhandled-rejection');
    logLimited({ err: reason }, 'a promise was rejected and nothing handled it (survived)');
  };
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  return () => {
    process.off('uncaughtException', onException);
    process.off('unhandledRejection', onRejection);
  };
}
