// The calling thread's id as Linux knows it: what `top -H`, `perf` and `taskset -p` take. /proc/thread-self is a link
// to <pid>/task/<tid> for whichever thread reads it; elsewhere (not Linux, no /proc) there is none.
import { readlinkSync } from 'node:fs';

export function linuxThreadId(): number | null {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isInteger(tid) && tid > 0 ? tid : null;
  } catch {
    return null;
  }
}
