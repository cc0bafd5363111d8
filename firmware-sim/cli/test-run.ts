// What every command that provisions devices shares (issue 13 §4: a test engineer's run never pollutes a live board):
// its devices are test devices named after the run, Ctrl-C stops it with its summary written first, and at the end it
// takes away what it created unless told to keep it. `eldergate-sim run` and `eldergate-sim fleet` both use this.
import type { CleanupResult } from '../scenario/cleanup.js';
import { cleanupSummary } from '../scenario/cleanup.js';
import { UsageError } from '../core/errors.js';

export const KEEP_HELP = `  --keep                leave the run's test devices, incidents and residents on the gateway (default: at the
                        end the run decommissions its devices and closes their test incidents)`;

/** --save-credentials keeps devices for later; a run that decommissions them at its end makes that file useless */
export function checkKeepForCredentials(saveCredentials: string | undefined, keep: boolean | undefined): void {
  if (saveCredentials && !keep) {
    throw new UsageError('--save-credentials keeps the devices for a later run, but without --keep this run decommissions them at its end: add --keep');
  }
}

export interface CtrlC {
  /** the first Ctrl-C came */
  readonly stopped: boolean;
  /** stop listening (the command is over) */
  dispose(): void;
}

/**
 * The first Ctrl-C calls `onStop` (the caller ends its run, writes its report and summary, then cleans up); a second
 * quits at once, without cleaning up, and says so.
 */
export function onCtrlC(onStop: () => void, firstMessage: string, say: (line: string) => void): CtrlC {
  let stopped = false;
  const handler = () => {
    if (stopped) {
      process.stderr.write('\nstopped again: quitting without cleaning up (the run\'s test devices stay on the gateway)\n');
      process.exit(130);
    }
    stopped = true;
    say(firstMessage);
    onStop();
  };
  process.on('SIGINT', handler);
  return {
    get stopped() {
      return stopped;
    },
    dispose: () => process.off('SIGINT', handler),
  };
}

/** at the end of a run, once its report and summary are written: keep what it created, or take it away */
export async function finishTestRun(o: { runId: string; keep: boolean; cleanup: () => Promise<CleanupResult>; say: (line: string) => void }): Promise<CleanupResult | undefined> {
  if (o.keep) {
    o.say(`kept test run ${o.runId}: its devices, incidents and residents stay on the gateway, marked test`);
    return undefined;
  }
  const c = await o.cleanup();
  o.say(cleanupSummary(o.runId, c));
  return c;
}
