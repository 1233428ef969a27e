/**
 * A real token store whose reads of provider "slow" take `delayMs`: drives cancel and timeout tests.
 * Its change stamp never repeats, so the daemon's token cache never serves it and every get_token
 * really reaches the store.
 */
import { MemoryStore } from '../../src/store/memory.js';
import type { StoredToken } from '../../src/store/types.js';

export class SlowStore extends MemoryStore {
  constructor(private readonly delayMs: number) {
    super();
  }

  private reads = 0;

  override changeStamp(): string {
    return `slow-${++this.reads}`;
  }

  override async getToken(provider: string, bucket: string): Promise<StoredToken | null> {
    if (provider === 'slow') await new Promise((r) => setTimeout(r, this.delayMs));
    return super.getToken(provider, bucket);
  }
}
