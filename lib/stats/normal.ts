/**
 * The standard normal's CDF and its inverse in float64 (scipy.special.ndtr and ndtri), for the BCa interval's
 * bias and acceleration terms. erfc: the Maclaurin series of erf below |x| = 2.5, a continued fraction (modified
 * Lentz) above; ndtri: Acklam's rational start refined by Halley steps against that CDF. Both are accurate to a
 * few ulps over the range an interval needs (|z| < 8), which the oracle test checks against SciPy.
 */

const SQRT2 = Math.SQRT2;
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/** erf(x) by its Maclaurin series: Σ (−1)^n x^(2n+1) / (n! (2n+1)), summed until the terms vanish. */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= -x2 / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
  }
  return TWO_OVER_SQRT_PI * sum;
}

/** erfc(x) for x > 0 by the continued fraction e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))). */
function erfcFraction(x: number): number {
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 500; n++) {
    const a = n / 2;
    d = x + a * d;
    d = d === 0 ? tiny : 1 / d;
    c = x + a / c;
    if (c === 0) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (Math.abs(x) < 2.5) return 1 - erfSeries(x);
  return x > 0 ? erfcFraction(x) : 2 - erfcFraction(-x);
}

/** Φ(z) = P(Z ≤ z), computed from erfc on the tail side so small probabilities keep their digits. */
export function ndtr(z: number): number {
  return 0.5 * erfc(-z / SQRT2);
}

/** Acklam's rational approximation of Φ⁻¹ (relative error about 1e-9): the starting point. */
function acklam(p: number): number {
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (
      (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
      ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1)
    );
  }
  if (p > 1 - low) return -acklam(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1)
  );
}

/** Φ⁻¹(p): −∞ at 0, +∞ at 1, NaN outside [0, 1]. */
export function ndtri(p: number): number {
  if (Number.isNaN(p) || p < 0 || p > 1) return NaN;
  if (p === 0) return -Infinity;
  if (p === 1) return Infinity;
  let z = acklam(p);
  // Halley's method on Φ(z) − p, evaluated on the tail side (p above ½ is solved as −Φ⁻¹(1 − p)).
  const upper = p > 0.5;
  const target = upper ? 1 - p : p;
  if (upper) z = -z;
  for (let k = 0; k < 3; k++) {
    const e = ndtr(z) - target;
    const u = e * Math.sqrt(2 * Math.PI) * Math.exp((z * z) / 2);
    z -= u / (1 + (z * u) / 2);
  }
  return upper ? -z : z;
}
