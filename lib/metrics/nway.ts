/**
 * n-way top-1 classification (spec §5.1, the authors' n_way_top_k_acc): a supplied classifier's class
 * probabilities for each reconstruction, and the class c* it assigns to the ground-truth image. Each trial
 * draws n − 1 distinct distractor classes other than c* uniformly; it succeeds when p[c*] is the largest of
 * the n (a tie counts as success, as torchmetrics' top-k puts the first-listed c* ahead). Score = mean over
 * trials, then over items. Chance is measured on mismatched items (nWayMismatchedChance), not assumed 1/n.
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
 * The distractor classes of every trial: [items, trials, n − 1], each trial n − 1 distinct classes other than
 * the item's c*, uniformly (a partial Fisher-Yates shuffle of the other classes). Drawn apart from scoring so
 * that a test can hand the same draws to a reference implementation.
 */
export function drawDistractors(
  targetClasses: Int32Array,
  classes: number,
  options: { n: number; trials?: number; rng: Rng },
): Int32Array {
  const { n, rng } = options;
  const trials = options.trials ?? NWAY_TRIALS;
  checkN(n, classes);
  if (!Number.isInteger(trials) || trials < 1)
    throw new BadInputError(`trials must be an integer >= 1, got ${trials}`);
  const draws = new Int32Array(targetClasses.length * trials * (n - 1));
  const pool = new Int32Array(classes - 1);
  targetClasses.forEach((target, i) => {
    checkTarget(target, i, classes);
    for (let c = 0, k = 0; c < classes; c++) if (c !== target) pool[k++] = c;
    for (let t = 0; t < trials; t++) {
      const at = (i * trials + t) * (n - 1);
      for (let k = 0; k < n - 1; k++) {
        const j = rng.integer(k, classes - 1);
        const pick = pool[j]!;
        pool[j] = pool[k]!;
        pool[k] = pick;
        draws[at + k] = pick;
      }
    }
  });
  return draws;
}

function checkN(n: number, classes: number): void {
  if (!Number.isInteger(n) || n < 2) throw new BadInputError(`n-way needs an integer n >= 2, got ${n}`);
  if (n > classes)
    throw new BadInputError(
      `n-way with n=${n} needs at least ${n} classes, the probabilities have ${classes}`,
    );
}

function checkTarget(target: number, i: number, classes: number): void {
  if (!Number.isInteger(target) || target < 0 || target >= classes)
    throw new BadInputError(`target class ${target} of item ${i} is not in [0, ${classes})`);
}

/**
 * P(p[c] is the largest of n) over uniform draws of n − 1 distinct other classes: with m classes above p[c],
 * C(C − 1 − m, n − 1) / C(C − 1, n − 1).
 */
function winProbability(row: Float64Array, c: number, n: number): number {
  let above = 0;
  for (let k = 0; k < row.length; k++) if (row[k]! > row[c]!) above++;
  let p = 1;
  for (let k = 0; k < n - 1; k++) p *= Math.max(0, row.length - 1 - above - k) / (row.length - 1 - k);
  return p;
}

/**
 * The n-way score's chance level, measured: the expected score of each reconstruction against the c* of every
 * other item (mismatched pairs), averaged. Not 1/n: a classifier that favours some classes (class means over
 * unequal numbers of images, say) moves it either way.
 */
export function nWayMismatchedChance(probs: Items, targetClasses: Int32Array, n: number): number {
  let sum = 0;
  for (let i = 0; i < probs.count; i++) {
    const row = probs.data.subarray(i * probs.size, (i + 1) * probs.size);
    for (let j = 0; j < probs.count; j++) if (j !== i) sum += winProbability(row, targetClasses[j]!, n);
  }
  return sum / (probs.count * (probs.count - 1));
}

/**
 * @param probs class probabilities of the reconstructions, [N, C]
 * @param targetClasses c* for each item, [N]
 * @param options either `rng` (and `trials`) to draw the distractors, or `draws` from drawDistractors
 */
export function nWayTop1(
  probs: Items,
  targetClasses: Int32Array,
  options: { n: number; trials?: number; rng?: Rng; draws?: Int32Array },
): NWayResult {
  const { n } = options;
  const classes = probs.size;
  if (probs.itemShape.length !== 1)
    throw new BadInputError(
      `n-way needs probability rows [N, C], got items of shape [${probs.itemShape.join(', ')}]`,
    );
  if (targetClasses.length !== probs.count) {
    throw new BadInputError(`${probs.count} probability rows but ${targetClasses.length} target classes`);
  }
  checkN(n, classes);
  if (!options.draws && !options.rng) throw new BadInputError('n-way needs an rng or the draws');
  const draws =
    options.draws ??
    drawDistractors(targetClasses, classes, { n, trials: options.trials, rng: options.rng! });
  const trials = draws.length / (probs.count * (n - 1));
  if (!Number.isInteger(trials) || trials < 1)
    throw new BadInputError(
      `${draws.length} distractor draws do not fill [${probs.count}, trials, ${n - 1}]`,
    );
  const perItem: number[] = [];
  for (let i = 0; i < probs.count; i++) {
    const target = targetClasses[i]!;
    checkTarget(target, i, classes);
    const row = probs.data.subarray(i * classes, (i + 1) * classes);
    let wins = 0;
    for (let t = 0; t < trials; t++) {
      let win = true;
      for (let k = 0; k < n - 1; k++) {
        const pick = draws[(i * trials + t) * (n - 1) + k]!;
        if (pick === target || !(pick >= 0 && pick < classes))
          throw new BadInputError(`distractor ${pick} of item ${i} trial ${t} is c* or not a class`);
        if (row[pick]! > row[target]!) win = false;
      }
      if (win) wins++;
    }
    perItem.push(wins / trials);
  }
  const chance = probs.count > 1 ? nWayMismatchedChance(probs, targetClasses, n) : null;
  return { value: mean(perItem), chance, n, trials, perItem };
}
