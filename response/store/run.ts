// One domain, two kinds of store: the incident service's logic is written once as generators that `yield* io(…)`
// each store call, and run by `runSync` over SQLite (synchronous — the alarm path stays one synchronous transaction,
// no promise per read) or by `runAsync` over PostgreSQL (each call awaited). The same idea as Babel's gensync, in
// the few lines this needs.
import type { Ret, StoreMode } from './types.js';

/** A step of domain logic that reads and writes through a store and ends with a T. */
export type Step<T> = Generator<unknown, T, unknown>;

/** Hand a store call's result (a value, or a promise of one) to the runner; resumes with the value. */
export function* io<T>(value: T | Promise<T>): Step<T> {
  return (yield value) as T;
}

export function runSync<T>(step: Step<T>): T {
  let r = step.next();
  while (!r.done) {
    if (r.value instanceof Promise) {
      // a programming error (an async store behind a sync runner): stop the step, do not leave a promise unobserved
      r.value.catch(() => {});
      step.return(undefined as never);
      throw new Error('an asynchronous store call inside a synchronous incident step');
    }
    r = step.next(r.value);
  }
  return r.value;
}

export async function runAsync<T>(step: Step<T>): Promise<T> {
  let r = step.next();
  while (!r.done) {
    let value: unknown;
    try {
      value = await r.value;
    } catch (err) {
      r = step.throw(err);
      continue;
    }
    r = step.next(value);
  }
  return r.value;
}

/** The runner for a store's mode. */
export function runnerFor<M extends StoreMode>(mode: M): <T>(step: Step<T>) => Ret<M, T> {
  return (mode === 'sync' ? runSync : runAsync) as <T>(step: Step<T>) => Ret<M, T>;
}
