// Seeded randomness: same seed → same run. mulberry32 for the stream (fast, 32-bit state, good enough for
// simulation), splitmix32 to derive independent child seeds so that device #17's choices do not depend on how
// many random numbers device #16 drew.

/** FNV-1a 32-bit hash of a label, to derive seeds from names. */
export function hashLabel(label: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** One splitmix32 step: a well-mixed 32-bit value from any 32-bit input. */
export function splitmix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class Rng {
  private state: number;

  constructor(readonly seed: number) {
    this.state = splitmix32(seed >>> 0);
  }

  /** uniform in [0, 1) — mulberry32 */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** uniform in [min, max) */
  range(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  /** integer uniform in [min, max] */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[Math.floor(this.next() * items.length)] as T;
  }

  /** exponential with the given mean (inter-arrival times of a Poisson process) */
  exp(mean: number): number {
    return -Math.log(1 - this.next()) * mean;
  }

  /** standard normal (Box–Muller) */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** k distinct items, order as drawn (partial Fisher–Yates on a copy) */
  sample<T>(items: readonly T[], k: number): T[] {
    const copy = items.slice();
    const n = Math.min(k, copy.length);
    for (let i = 0; i < n; i++) {
      const j = i + Math.floor(this.next() * (copy.length - i));
      const tmp = copy[i] as T;
      copy[i] = copy[j] as T;
      copy[j] = tmp;
    }
    return copy.slice(0, n);
  }

  /** an independent stream for a child (a device, a subsystem), derived from this seed and a label */
  fork(label: string | number): Rng {
    const l = typeof label === 'number' ? label : hashLabel(label);
    return new Rng(splitmix32(this.seed ^ splitmix32(l)));
  }
}
