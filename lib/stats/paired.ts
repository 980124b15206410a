/**
 * The paired comparison of two runs on the same test items: the per-item differences d = candidate − reference,
 * their mean, a paired bootstrap interval of that mean (items resampled, lib/stats/bootstrap.ts), and a
 * sign-flip permutation test of "no difference" (under H0 each d_i is as likely to have the other sign). This is
 * scipy.stats.permutation_test(data=(d,), statistic=mean, permutation_type='samples'): exact over all 2^n sign
 * patterns when 2^n <= resamples (p counts the observed pattern among them), else `resamples` random patterns
 * with p = (count + 1) / (resamples + 1); values within 100 ulps of the observed mean count as equal to it.
 */
import type { Rng } from '../compute/rng.js';
import { BadInputError } from '../errors.js';
import { mean } from './bootstrap.js';

export type Alternative = 'less' | 'greater' | 'two-sided';

export interface SignFlipResult {
  /** mean(d) */
  statistic: number;
  p: number;
  exact: boolean;
  /** Sign patterns the null distribution holds (2^n when exact). */
  patterns: number;
}

/** Random sign patterns: [resamples, n] of ±1 (a test hands the same ones to a numpy transcription). */
export function drawSigns(n: number, resamples: number, rng: Rng): Int8Array {
  const out = new Int8Array(resamples * n);
  for (let i = 0; i < out.length; i++) out[i] = rng.integer(0, 2) === 0 ? 1 : -1;
  return out;
}

/** Largest n tested exactly: 2^n patterns must fit a typed array and a few seconds. */
const EXACT_MAX_ITEMS = 24;

/** Whether signFlipTest enumerates every sign pattern of n items (else it draws `resamples` random ones). */
export const signFlipIsExact = (n: number, resamples: number): boolean =>
  n <= EXACT_MAX_ITEMS && 2 ** n <= resamples;

/**
 * The smallest two-sided p signFlipTest can return on n items, whatever the differences: exact, only the observed
 * pattern and its mirror image are as extreme, 2·2^-n = 2^-(n-1) (all n differences of one sign); sampled, no
 * drawn pattern as extreme, 2/(resamples + 1).
 */
export function smallestTwoSidedP(n: number, resamples: number): number {
  return signFlipIsExact(n, resamples) ? 2 ** -(n - 1) : Math.min(1, 2 / (resamples + 1));
}

export function signFlipTest(
  d: Float64Array,
  options: { alternative: Alternative; resamples: number; rng?: Rng; signs?: Int8Array },
): SignFlipResult {
  const n = d.length;
  if (n < 2) throw new BadInputError(`a paired test needs at least 2 items, got ${n}`);
  const observed = mean(d);
  const gamma = Math.abs(Number.EPSILON * 100 * observed);
  const exact = signFlipIsExact(n, options.resamples) && !options.signs;
  let less = 0;
  let greater = 0;
  const count = (s: number) => {
    if (s <= observed + gamma) less++;
    if (s >= observed - gamma) greater++;
  };
  let patterns: number;
  if (exact) {
    patterns = 2 ** n;
    // pattern bits: bit k set flips d_k (pattern 0 is the observed one)
    for (let pattern = 0; pattern < patterns; pattern++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += pattern & (1 << k) ? -d[k]! : d[k]!;
      count(s / n);
    }
  } else {
    const signs = options.signs ?? drawSigns(n, options.resamples, required(options.rng));
    patterns = signs.length / n;
    for (let b = 0; b < patterns; b++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += signs[b * n + k]! * d[k]!;
      count(s / n);
    }
  }
  const adjust = exact ? 0 : 1;
  const pLess = (less + adjust) / (patterns + adjust);
  const pGreater = (greater + adjust) / (patterns + adjust);
  const p =
    options.alternative === 'less'
      ? pLess
      : options.alternative === 'greater'
        ? pGreater
        : Math.min(1, 2 * Math.min(pLess, pGreater));
  return { statistic: observed, p: Math.min(1, p), exact, patterns };
}

function required(rng: Rng | undefined): Rng {
  if (!rng) throw new Error('internal: a sampled sign-flip test needs an rng or the signs');
  return rng;
}
