/** Waiting on work that an AbortSignal may stop waiting for. */

/**
 * Settles like `promise`, or rejects with `aborted()` as soon as `signal` aborts (at once when it
 * already has). The promise itself runs on, and its outcome is always observed, so a later rejection
 * is never left unhandled.
 */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal, aborted: () => unknown): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(aborted());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(aborted());
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/**
 * Resolves after `ms`, or at once when `signal` aborts (the caller then checks the signal). With
 * `unref` the wait alone does not keep the process alive.
 */
export function pause(ms: number, signal?: AbortSignal, { unref = false } = {}): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (unref) timer.unref();
    signal?.addEventListener('abort', done, { once: true });
  });
}
