/**
 * Seeded randomness for everything that trains or samples: initialisation, data synthesis, masking,
 * dropout, data order, MaskGIT sampling. Generated in JS (and uploaded as tensors where needed) so a
 * run is reproducible from its seed on any backend; tfjs' own random ops are not used in training code.
 *
 * Generator: xoshiro128** (Blackman & Vigna), 128-bit state, 32-bit outputs, period 2^128 - 1, seeded
 * through splitmix32. Its whole state is four uint32 words: getState()/setState() checkpoint it exactly.
 */

/** A generator's complete state, JSON-safe. */
export interface RngState {
  readonly s: readonly [number, number, number, number];
}

const TWO_POW_32 = 4294967296;
const TWO_POW_M24 = 1 / 16777216;
const TWO_POW_M53 = 1 / 9007199254740992;

/** FNV-1a over the UTF-16 code units: turns a stream label into 32 seed bits. */
function hashLabel(label: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) {
    h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
  }
  return h >>> 0;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export class Rng {
  private a = 0;
  private b = 0;
  private c = 0;
  private d = 0;

  /**
   * @param seed a non-negative safe integer (the run's seed)
   * @param stream names an independent stream of the same seed ('init', 'data-order', 'masking', ...)
   */
  constructor(seed: number, stream = '') {
    if (!Number.isSafeInteger(seed) || seed < 0)
      throw new RangeError(`seed must be a safe integer >= 0: ${seed}`);
    // splitmix32 over (low word, high word, stream hash) fills the four state words.
    let x = (seed >>> 0) ^ Math.imul(Math.floor(seed / TWO_POW_32), 0x9e3779b9) ^ hashLabel(stream);
    const next = (): number => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
  }

  getState(): RngState {
    // the words are kept as int32 internally (bit operations); the state is stated as uint32
    return { s: [this.a >>> 0, this.b >>> 0, this.c >>> 0, this.d >>> 0] };
  }

  setState(state: RngState): void {
    const [a, b, c, d] = state.s;
    const words = [a, b, c, d];
    if (words.some((w) => !Number.isInteger(w) || w < 0 || w >= TWO_POW_32) || words.every((w) => w === 0)) {
      throw new RangeError('RNG state must be four uint32 words, not all zero');
    }
    this.a = a;
    this.b = b;
    this.c = c;
    this.d = d;
  }

  /** The next 32 random bits as an unsigned integer; also a seed for tfjs ops that take one. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  uniform(): number {
    return ((this.nextUint32() >>> 5) * 67108864 + (this.nextUint32() >>> 6)) * TWO_POW_M53;
  }

  /** Fills `out` with uniforms in [lo, hi) (24 random bits each; hi only through float32 rounding). */
  fillUniform(out: Float32Array, lo = 0, hi = 1): Float32Array {
    const span = hi - lo;
    for (let i = 0; i < out.length; i++) out[i] = lo + span * (this.nextUint32() >>> 8) * TWO_POW_M24;
    return out;
  }

  /** One standard normal draw times std plus mean (Marsaglia's polar method; the pair's twin is dropped). */
  normal(mean = 0, std = 1): number {
    for (;;) {
      const u = 2 * this.uniform() - 1;
      const v = 2 * this.uniform() - 1;
      const s = u * u + v * v;
      if (s > 0 && s < 1) return mean + std * u * Math.sqrt((-2 * Math.log(s)) / s);
    }
  }

  /** Fills `out` with normal draws (both of each polar pair are used; 32-bit uniforms suffice for float32). */
  fillNormal(out: Float32Array, mean = 0, std = 1): Float32Array {
    let i = 0;
    while (i < out.length) {
      const u = (this.nextUint32() + 0.5) * (2 / TWO_POW_32) - 1;
      const v = (this.nextUint32() + 0.5) * (2 / TWO_POW_32) - 1;
      const s = u * u + v * v;
      if (s >= 1) continue;
      const f = std * Math.sqrt((-2 * Math.log(s)) / s);
      out[i++] = mean + u * f;
      if (i < out.length) out[i++] = mean + v * f;
    }
    return out;
  }

  /** Uniform integer in [lo, hi), unbiased (rejection); hi - lo must be in [1, 2^32]. */
  integer(lo: number, hi: number): number {
    const n = hi - lo;
    if (!Number.isInteger(lo) || !Number.isInteger(n) || n < 1 || n > TWO_POW_32) {
      throw new RangeError(`integer range [${lo}, ${hi}) is empty, fractional or wider than 2^32`);
    }
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return lo + (x % n);
    }
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T extends { length: number; [i: number]: unknown }>(items: T): T {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.integer(0, i + 1);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }

  /** An index drawn with probability proportional to the non-negative `weights` (inverse CDF). */
  categorical(weights: ArrayLike<number>): number {
    let total = 0;
    let last = -1;
    for (let i = 0; i < weights.length; i++) {
      const w = weights[i] as number;
      if (!(w >= 0) || w === Infinity) throw new RangeError(`categorical weight ${i} is ${w}`);
      total += w;
      if (w > 0) last = i;
    }
    if (last < 0) throw new RangeError('categorical weights are all zero');
    let u = this.uniform() * total;
    for (let i = 0; i < last; i++) {
      u -= weights[i] as number;
      if (u < 0) return i;
    }
    return last; // also absorbs the rounding of the running subtraction
  }

  /** A standard Gumbel draw, -log(-log(u)) with u strictly inside (0, 1). */
  gumbel(): number {
    const u = ((this.nextUint32() >>> 5) * 67108864 + (this.nextUint32() >>> 6) + 0.5) * TWO_POW_M53;
    return -Math.log(-Math.log(u));
  }

  /** Fills `out` with standard Gumbel draws (for Gumbel-max sampling over logits). */
  fillGumbel(out: Float32Array): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = this.gumbel();
    return out;
  }
}
