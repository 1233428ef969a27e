// Summary statistics of the benchmarks: percentiles of raw samples and medians of paired ratios.

/** The p-th percentile (0–100) of `samples` (nearest rank). */
export function percentile(samples, p) {
  const sorted = Float64Array.from(samples).sort();
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export const median = (xs) => percentile(xs, 50);

/** p50, p99 and p99.9 of latency samples. */
export function latencySummary(samples) {
  return { n: samples.length, p50: percentile(samples, 50), p99: percentile(samples, 99), p999: percentile(samples, 99.9) };
}

/**
 * Ratios of paired measurements (each pair taken back to back) summarised by their median and
 * spread: machine noise moves both sides of a pair alike, so the ratio is steadier than either.
 */
export function ratioSummary(numerators, denominators) {
  const ratios = numerators.map((x, i) => x / denominators[i]);
  return { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios), q1: percentile(ratios, 25), q3: percentile(ratios, 75), pairs: ratios.length };
}

export const round = (x, digits = 2) => (Number.isFinite(x) ? Number(x.toFixed(digits)) : null);
