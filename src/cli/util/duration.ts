/** Human-readable durations for expiry reports ("expires in 42m", "EXPIRED 3h ago"). */

/** Compact duration: 45s, 42m, 3h 5m, 2d 4h. */
export function formatDuration(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(Math.abs(totalSeconds)));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h}h ${m % 60}m` : `${h}h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d}d ${h % 24}h` : `${d}d`;
}

/** "expires in 42m" or "EXPIRED 3h ago" from seconds-to-expiry (negative = past). */
export function describeExpiry(secondsLeft: number): string {
  return secondsLeft > 0 ? `expires in ${formatDuration(secondsLeft)}` : `EXPIRED ${formatDuration(secondsLeft)} ago`;
}
