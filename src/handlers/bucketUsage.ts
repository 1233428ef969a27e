/** Per-bucket request counters behind get_bucket_stats; in memory, per daemon. */

interface Usage {
  count: number;
  lastUsed: number;
}

export class BucketUsage {
  private readonly byProvider = new Map<string, Map<string, Usage>>();

  /** Counts one served token request. */
  record(provider: string, bucket: string, now: number): void {
    let buckets = this.byProvider.get(provider);
    if (!buckets) this.byProvider.set(provider, (buckets = new Map()));
    const usage = buckets.get(bucket);
    if (usage) {
      usage.count += 1;
      usage.lastUsed = now;
    } else {
      buckets.set(bucket, { count: 1, lastUsed: now });
    }
  }

  /** Requests served from this bucket, its share of the provider's requests (0–100) and last use (ms). */
  stats(provider: string, bucket: string): { requestCount: number; percentage: number; lastUsed?: number } {
    const buckets = this.byProvider.get(provider);
    const usage = buckets?.get(bucket);
    if (!buckets || !usage) return { requestCount: 0, percentage: 0 };
    let total = 0;
    for (const u of buckets.values()) total += u.count;
    return { requestCount: usage.count, percentage: Math.round((usage.count / total) * 10_000) / 100, lastUsed: usage.lastUsed };
  }
}
