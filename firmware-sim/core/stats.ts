// Latency samples: kept exactly (a run has at most a few hundred thousand alarms, 8 bytes each) so that the
// report's percentiles are true percentiles, not bucket estimates.

export interface LatencySummary {
  count: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export class Latency {
  private values = new Float64Array(1024);
  private n = 0;
  private sorted: Float64Array | null = null;

  add(ms: number): void {
    if (!Number.isFinite(ms)) return;
    if (this.n === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.n++] = ms;
    this.sorted = null;
  }

  get count(): number {
    return this.n;
  }

  /** q in [0, 1]; NaN when empty (nearest-rank) */
  quantile(q: number): number {
    if (this.n === 0) return NaN;
    const s = this.sortedValues();
    const idx = Math.min(this.n - 1, Math.max(0, Math.ceil(q * this.n) - 1));
    return s[idx] as number;
  }

  summary(): LatencySummary {
    if (this.n === 0) return { count: 0, min: NaN, p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN };
    const s = this.sortedValues();
    let sum = 0;
    for (let i = 0; i < this.n; i++) sum += s[i] as number;
    return {
      count: this.n,
      min: s[0] as number,
      p50: this.quantile(0.5),
      p90: this.quantile(0.9),
      p99: this.quantile(0.99),
      max: s[this.n - 1] as number,
      mean: sum / this.n,
    };
  }

  /** all samples, ascending */
  toArray(): number[] {
    return Array.from(this.sortedValues());
  }

  private sortedValues(): Float64Array {
    if (!this.sorted) this.sorted = this.values.slice(0, this.n).sort();
    return this.sorted;
  }
}

/** Histogram buckets on a log scale (1-2-5 steps), for the report's picture. */
export function logBuckets(samples: readonly number[]): { le: number; count: number }[] {
  const edges: number[] = [];
  for (let decade = 0.1; decade <= 1e6; decade *= 10) for (const m of [1, 2, 5]) edges.push(+(decade * m).toPrecision(3));
  if (samples.length === 0) return [];
  let min = Infinity;
  let max = -Infinity;
  for (const v of samples) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  // one empty bucket below the smallest sample, so the picture starts from a visible edge
  const lo = Math.max(0, edges.findIndex((e) => e >= min) - 1);
  const hi = edges.findIndex((e) => e >= max);
  const chosen = edges.slice(lo, (hi < 0 ? edges.length - 1 : hi) + 1);
  const out = chosen.map((le) => ({ le, count: 0 }));
  for (const v of samples) {
    const b = out.find((x) => v <= x.le) ?? out[out.length - 1];
    if (b) b.count++;
  }
  return out;
}

/** summary of plain samples (any order) */
export function summarize(samples: readonly number[]): LatencySummary {
  const l = new Latency();
  for (const v of samples) l.add(v);
  return l.summary();
}
