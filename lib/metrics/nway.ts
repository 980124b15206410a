/**
 * n-way top-1 classification (spec §5.1, the authors' n_way_top_k_acc): a supplied classifier's class
 * probabilities for each reconstruction, and the class c* it assigns to the ground-truth image. Each trial
 * draws n − 1 distinct distractor classes other than c* uniformly; it succeeds when p[c*] is the largest of
 * the n (a tie counts as success, as torchmetrics' top-k puts the first-listed c* ahead). Score = mean over
 * trials, then over items. Chance 1/n.
 */
import type { Rng } from '../compute/rng.js';
import { BadInputError } from '../errors.js';
import { mean, type Items, type MetricResult } from './common.js';

export const PAPER_NWAY = 50;
export const NWAY_TRIALS = 1000;

export interface NWayResult extends MetricResult {
  n: number;
  trials: number;
  perItem: number[];
}

/** Index of each row's largest entry (the first on ties), e.g. the classifier's class for a ground truth. */
export function argmaxRows(probs: Items): Int32Array {
  const out = new Int32Array(probs.count);
  for (let i = 0; i < probs.count; i++) {
    let best = 0;
    for (let c = 1; c < probs.size; c++)
      if (probs.data[i * probs.size + c]! > probs.data[i * probs.size + best]!) best = c;
    out[i] = best;
  }
  return out;
}

/**
 * @param probs class probabilities of the reconstructions, [N, C]
 * @param targetClasses c* for each item, [N]
 */
export function nWayTop1(
  probs: Items,
  targetClasses: Int32Array,
  options: { n: number; trials?: number; rng: Rng },
): NWayResult {
  const { n, rng } = options;
  const trials = options.trials ?? NWAY_TRIALS;
  const classes = probs.size;
  if (probs.itemShape.length !== 1)
    throw new BadInputError(
      `n-way needs probability rows [N, C], got items of shape [${probs.itemShape.join(', ')}]`,
    );
  if (targetClasses.length !== probs.count) {
    throw new BadInputError(`${probs.count} probability rows but ${targetClasses.length} target classes`);
  }
  if (!Number.isInteger(n) || n < 2) throw new BadInputError(`n-way needs an integer n >= 2, got ${n}`);
  if (n > classes)
    throw new BadInputError(
      `n-way with n=${n} needs at least ${n} classes, the probabilities have ${classes}`,
    );
  if (!Number.isInteger(trials) || trials < 1)
    throw new BadInputError(`trials must be an integer >= 1, got ${trials}`);
  const perItem: number[] = [];
  // Distractor pool: every class but c*, partially shuffled per trial (first n − 1 entries are the draw).
  const pool = new Int32Array(classes - 1);
  for (let i = 0; i < probs.count; i++) {
    const target = targetClasses[i]!;
    if (!Number.isInteger(target) || target < 0 || target >= classes) {
      throw new BadInputError(`target class ${target} of item ${i} is not in [0, ${classes})`);
    }
    const row = probs.data.subarray(i * classes, (i + 1) * classes);
    for (let c = 0, k = 0; c < classes; c++) if (c !== target) pool[k++] = c;
    let wins = 0;
    for (let t = 0; t < trials; t++) {
      let win = true;
      for (let k = 0; k < n - 1; k++) {
        const j = rng.integer(k, classes - 1);
        const pick = pool[j]!;
        pool[j] = pool[k]!;
        pool[k] = pick;
        if (row[pick]! > row[target]!) win = false;
      }
      if (win) wins++;
    }
    perItem.push(wins / trials);
  }
  return { value: mean(perItem), chance: 1 / n, n, trials, perItem };
}
