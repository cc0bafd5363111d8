// A value or a promise of one: what a store call or a write handed to another thread returns. The one-node SQLite
// path stays synchronous (the alarm path, the tests' manual clock); the same caller also works when it is a promise.

/**
 * Run `work` and hand its outcome to `onValue` or `onError`: at once when it is synchronous (the one-node store, the
 * tests' manual clock), once it settles when it is a promise (a write handed to the writer thread, PostgreSQL).
 * `onError` must not throw.
 */
export function settle<T>(work: () => T | Promise<T>, onValue: (value: T) => void, onError: (err: unknown) => void): void {
  let value: T | Promise<T>;
  try {
    value = work();
  } catch (err) {
    onError(err);
    return;
  }
  // a failure of `onValue` is `onError`'s too, in both modes (never an unhandled rejection)
  const done = (v: T) => {
    try {
      onValue(v);
    } catch (err) {
      onError(err);
    }
  };
  if (value instanceof Promise) value.then(done, onError);
  else done(value);
}

/** Then `f`, on a value or a promise of one (sync stays sync). Not named `then`: a module exporting `then` is a thenable to `await import()`. */
export function andThen<A, B>(value: A | Promise<A>, f: (a: A) => B): B | Promise<B> {
  return value instanceof Promise ? value.then(f) : f(value);
}
