/**
 * MaskGIT iterative decoding (spec §3), as the authors' predict_eval (src/transformer_models.py) runs it:
 * start fully masked; at each of T steps draw a code at every still-masked position from the softmax of the
 * logits (temperature 1, no top-k), then re-mask the least confident draws, fewer each step on a cosine
 * schedule, with Gumbel noise on the confidences scaled by choiceTemperature·(1 − r). The output is the
 * last step's draws, which fill every position. All randomness comes from the supplied seeded Rng. The
 * paper's steps (11), choice temperature (4.5) and samples per item (5) are the config's `decoding` defaults.
 */
import type { Rng } from '../compute/rng.js';
import { BadInputError } from '../errors.js';
import { maskRatio } from './maskgit.js';

export interface MaskGitDecodeOptions {
  /** Logits over the `vocab` codes at every position: tokens [rows·length] → [rows·length·vocab]. */
  logits: (tokens: Int32Array) => Promise<Float32Array>;
  rows: number;
  length: number;
  vocab: number;
  /** The transformer's mask token id; never drawn (it lies outside the `vocab` columns). */
  maskId: number;
  rng: Rng;
  steps: number;
  choiceTemperature: number;
}

export interface MaskGitDecodeResult {
  /** The last step's draws, [rows·length], all in [0, vocab). */
  tokens: Int32Array;
  /** Positions left masked after each step, [steps·rows] (step-major). */
  maskedAfterStep: Int32Array;
}

/**
 * How many positions stay masked after step t (0-based) of T: floor(L·maskRatio((t+1)/T)) clamped to
 * [1, unknown − 1], so every step fixes at least one position and leaves at least one for the next.
 */
export function maskLength(step: number, steps: number, length: number, unknown: number): number {
  const n = Math.floor(length * maskRatio((step + 1) / steps));
  return Math.max(1, Math.min(unknown - 1, n));
}

/**
 * Which positions to re-mask (1) given their confidences: those strictly below the n-th smallest value
 * (0-based index n), as the reference's mask_by_random_topk; ties at the cut stay fixed.
 */
export function remaskBelowCut(confidence: Float64Array, n: number): Uint8Array {
  const cut = Float64Array.from(confidence).sort()[n]!;
  return Uint8Array.from(confidence, (c) => (c < cut ? 1 : 0));
}

function checkOptions(o: MaskGitDecodeOptions, steps: number, temperature: number): void {
  // At least 2 positions: the clamp keeps one masked position per step, which needs another to fix.
  for (const [name, v, min] of [
    ['rows', o.rows, 1],
    ['length', o.length, 2],
    ['vocab', o.vocab, 1],
    ['steps', steps, 1],
  ] as const) {
    if (!Number.isInteger(v) || v < min)
      throw new BadInputError(`MaskGIT decoding: ${name} must be an integer >= ${min}, got ${v}`);
  }
  if (!Number.isInteger(o.maskId) || (o.maskId >= 0 && o.maskId < o.vocab) || Math.abs(o.maskId) >= 2 ** 31) {
    throw new BadInputError(
      `MaskGIT decoding: mask id ${o.maskId} must be an int32 outside the ${o.vocab} drawable codes`,
    );
  }
  if (!Number.isFinite(temperature) || temperature < 0) {
    throw new BadInputError(
      `MaskGIT decoding: choice temperature must be finite and >= 0, got ${temperature}`,
    );
  }
}

export async function maskgitDecode(options: MaskGitDecodeOptions): Promise<MaskGitDecodeResult> {
  const { steps, choiceTemperature: temperature } = options;
  checkOptions(options, steps, temperature);
  const { rows, length: L, vocab: V, maskId, rng } = options;
  const cur = new Int32Array(rows * L).fill(maskId);
  const sampled = new Int32Array(rows * L);
  const confidence = new Float64Array(L);
  const weights = new Float64Array(V);
  const maskedAfterStep = new Int32Array(steps * rows);
  for (let t = 0; t < steps; t++) {
    const logits = await options.logits(cur.slice());
    if (logits.length !== rows * L * V) {
      throw new Error(`MaskGIT logits function returned ${logits.length} values, expected ${rows}x${L}x${V}`);
    }
    const ratio = (t + 1) / steps;
    const noise = temperature * (1 - ratio);
    for (let b = 0; b < rows; b++) {
      let unknown = 0;
      for (let i = 0; i < L; i++) {
        const pos = b * L + i;
        if (cur[pos] !== maskId) {
          sampled[pos] = cur[pos]!;
          confidence[i] = Infinity;
          continue;
        }
        unknown++;
        // Softmax in float64 with the max subtracted; the categorical draw takes unnormalised weights.
        const off = pos * V;
        let max = -Infinity;
        for (let v = 0; v < V; v++) max = Math.max(max, logits[off + v]!);
        if (!Number.isFinite(max))
          throw new Error(`MaskGIT logits at row ${b}, position ${i} are not finite`);
        let total = 0;
        for (let v = 0; v < V; v++) total += weights[v] = Math.exp(logits[off + v]! - max);
        const code = rng.categorical(weights);
        sampled[pos] = code;
        // log p(code), plus Gumbel noise (0 at the last step, where noise is 0).
        confidence[i] = logits[off + code]! - max - Math.log(total) + (noise > 0 ? noise * rng.gumbel() : 0);
      }
      const remask = remaskBelowCut(confidence, maskLength(t, steps, L, unknown));
      let masked = 0;
      for (let i = 0; i < L; i++) {
        const pos = b * L + i;
        cur[pos] = remask[i] ? maskId : sampled[pos]!;
        masked += remask[i]!;
      }
      maskedAfterStep[t * rows + b] = masked;
    }
  }
  return { tokens: sampled, maskedAfterStep };
}

/**
 * Repeats each of `items` rows of width `width` `samples` times, item-major (row = item·samples + s), the
 * batch layout of the authors' x[:, None].repeat(1, S, ...).flatten(0, 1) for decoding S samples per item.
 */
export function repeatForSamples(
  x: Float32Array,
  items: number,
  width: number,
  samples: number,
): Float32Array {
  if (x.length !== items * width)
    throw new BadInputError(`expected ${items}x${width} values, got ${x.length}`);
  const out = new Float32Array(items * samples * width);
  for (let i = 0; i < items; i++) {
    for (let s = 0; s < samples; s++)
      out.set(x.subarray(i * width, (i + 1) * width), (i * samples + s) * width);
  }
  return out;
}
