/**
 * The memory all proxies of a daemon may spend on replayable bodies: a sandbox that opens many
 * uploads and never finishes them gets its bodies streamed (no replay), not kept.
 */
export class ReplayBudget {
  constructor(private left: number) {}

  take(bytes: number): boolean {
    if (bytes > this.left) return false;
    this.left -= bytes;
    return true;
  }

  give(bytes: number): void {
    this.left += bytes;
  }
}
