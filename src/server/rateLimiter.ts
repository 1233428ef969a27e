/** Sliding one-second window: at most `max` events in any 1000 ms. */
export class RateLimiter {
  private readonly stamps: number[] = [];
  private head = 0;

  constructor(
    private readonly max: number,
    private readonly windowMs = 1000,
  ) {}

  /** Records an event at `now` and returns true, or returns false (and records nothing) when over the limit. */
  tryTake(now: number): boolean {
    while (this.head < this.stamps.length && this.stamps[this.head]! <= now - this.windowMs) this.head += 1;
    if (this.head > 1024) {
      this.stamps.splice(0, this.head);
      this.head = 0;
    }
    if (this.stamps.length - this.head >= this.max) return false;
    this.stamps.push(now);
    return true;
  }
}
