/**
 * Tracks the timers that code matching a stack pattern creates, by wrapping the global timer
 * functions: which are still pending (neither fired nor cleared). Unref'd timers do not show in
 * process.getActiveResourcesInfo(), so that cannot tell whether a component left any behind.
 */

export interface TimerTracker {
  /** Creation stacks of the matching timers still pending (an interval stays pending until cleared). */
  pending(): string[];
  /** Puts the real timer functions back. */
  restore(): void;
}

export function trackTimers(creator: RegExp): TimerTracker {
  const real = { setTimeout: globalThis.setTimeout, clearTimeout: globalThis.clearTimeout, setInterval: globalThis.setInterval, clearInterval: globalThis.clearInterval };
  const live = new Map<unknown, string>();
  const key = (t: unknown): unknown => (t !== null && typeof t === 'object' && Symbol.toPrimitive in t ? Number(t) : t);

  globalThis.setTimeout = ((fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const stack = new Error().stack ?? '';
    const timer = real.setTimeout((...a: unknown[]) => {
      live.delete(key(timer));
      fn(...a);
    }, ms, ...args);
    if (creator.test(stack)) live.set(key(timer), stack);
    return timer;
  }) as typeof setTimeout;
  globalThis.setInterval = ((fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const stack = new Error().stack ?? '';
    const timer = real.setInterval(fn, ms, ...args);
    if (creator.test(stack)) live.set(key(timer), stack);
    return timer;
  }) as typeof setInterval;
  globalThis.clearTimeout = ((t?: Parameters<typeof clearTimeout>[0]) => {
    live.delete(key(t));
    real.clearTimeout(t);
  }) as typeof clearTimeout;
  globalThis.clearInterval = ((t?: Parameters<typeof clearInterval>[0]) => {
    live.delete(key(t));
    real.clearInterval(t);
  }) as typeof clearInterval;

  return {
    pending: () => [...live.values()],
    restore() {
      Object.assign(globalThis, real);
    },
  };
}
