// A ratio over a recent window (hits / lookups in the last few minutes), for a gauge that
// says how the cache is doing now rather than since start.
export class RecentRatio {
  private readonly bucketMs: number;
  private readonly hits: number[];
  private readonly totals: number[];
  private current = 0;
  private currentStart: number;

  constructor(windowSeconds = 300, buckets = 30, now = Date.now()) {
    this.bucketMs = (windowSeconds * 1000) / buckets;
    this.hits = new Array<number>(buckets).fill(0);
    this.totals = new Array<number>(buckets).fill(0);
    this.currentStart = now;
  }

  private advance(now: number): void {
    if (now - this.currentStart >= this.bucketMs * this.hits.length) {
      // Idle for a whole window: everything in it is stale.
      this.hits.fill(0);
      this.totals.fill(0);
      this.currentStart = now;
      return;
    }
    while (now - this.currentStart >= this.bucketMs) {
      this.current = (this.current + 1) % this.hits.length;
      this.hits[this.current] = 0;
      this.totals[this.current] = 0;
      this.currentStart += this.bucketMs;
    }
  }

  record(hit: boolean, now = Date.now()): void {
    this.advance(now);
    this.totals[this.current]!++;
    if (hit) this.hits[this.current]!++;
  }

  /** The ratio, or NaN when nothing happened in the window. */
  value(now = Date.now()): number {
    this.advance(now);
    const total = this.totals.reduce((a, b) => a + b, 0);
    return total === 0 ? Number.NaN : this.hits.reduce((a, b) => a + b, 0) / total;
  }
}
