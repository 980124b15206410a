/**
 * Per-item scores: what the metrics stage stores in scores.json so that intervals, paired tests and comparisons
 * need no re-run. An item's score is its mean over the decoded samples; a suite pools its runs per item id
 * (the mean over the runs that scored that stimulus), so a mean over subjects or seeds is bootstrapped over
 * stimuli, the unit the paper's test set samples.
 */
import { BadInputError } from '../errors.js';

/** scores.json: items in the order of the test arrays, scores [samples][items] per metric. */
export interface ScoresFile {
  items: string[];
  scores: Record<string, number[][]>;
}

export const SCORES_FILE = 'scores.json';

/** Each metric's score per item (mean over samples), items in `items` order. */
export interface ItemScores {
  items: string[];
  scores: Record<string, Float64Array>;
}

/** Each item's mean over samples: [samples][items] → [items]. */
export function itemMeans(bySample: number[][]): Float64Array {
  const items = bySample[0]!.length;
  const out = new Float64Array(items);
  for (let i = 0; i < items; i++) {
    let s = 0;
    for (const sample of bySample) s += sample[i]!;
    out[i] = s / bySample.length;
  }
  return out;
}

export function parseScores(text: string, source: string): ItemScores {
  let file: ScoresFile;
  try {
    file = JSON.parse(text) as ScoresFile;
  } catch (err) {
    throw new BadInputError(`${source}: not a scores file (${(err as Error).message})`);
  }
  if (!Array.isArray(file.items) || typeof file.scores !== 'object' || file.scores === null)
    throw new BadInputError(`${source}: not a scores file (needs items and scores)`);
  const scores: Record<string, Float64Array> = {};
  for (const [name, bySample] of Object.entries(file.scores)) {
    // JSON keeps NaN as null: an item without a score stays NaN
    const means = itemMeans(bySample.map((row) => row.map((v) => (v === null ? NaN : v))));
    if (means.length !== file.items.length)
      throw new BadInputError(`${source}: ${name} scores ${means.length} items, not ${file.items.length}`);
    scores[name] = means;
  }
  return { items: file.items, scores };
}

/** Item scores as a scores file (one "sample" per item: its mean), the form a suite stores its pooled scores in. */
export function toScoresFile(s: ItemScores): ScoresFile {
  return {
    items: s.items,
    scores: Object.fromEntries(Object.entries(s.scores).map(([k, v]) => [k, [Array.from(v)]])),
  };
}

/**
 * Several runs' scores pooled per item id: the items all of them scored, each metric's item score the mean over
 * the runs (only metrics every run has). Undefined when the runs share fewer than two items (different test
 * sets, e.g. two datasets): their mean has no common items to resample.
 */
export function poolScores(runs: ItemScores[]): ItemScores | undefined {
  if (runs.length === 0) return undefined;
  const common = runs[0]!.items.filter((id) => runs.every((r) => r.items.includes(id)));
  if (common.length < 2) return undefined;
  const names = Object.keys(runs[0]!.scores).filter((n) => runs.every((r) => r.scores[n]));
  const scores: Record<string, Float64Array> = {};
  for (const name of names) {
    const pooled = new Float64Array(common.length);
    for (const r of runs) {
      const at = new Map(r.items.map((id, i) => [id, i]));
      common.forEach((id, i) => (pooled[i]! += r.scores[name]![at.get(id)!]! / runs.length));
    }
    scores[name] = pooled;
  }
  return { items: common, scores };
}

/** Two runs' scores of one metric on the items both have, in the same order: the pairs of a paired test. */
export function pairedItems(
  a: ItemScores,
  b: ItemScores,
  metric: string,
): { a: Float64Array; b: Float64Array } | undefined {
  const sa = a.scores[metric];
  const sb = b.scores[metric];
  if (!sa || !sb) return undefined;
  const at = new Map(b.items.map((id, i) => [id, i]));
  const pairs = a.items.flatMap((id, i) => {
    const j = at.get(id);
    return j === undefined || !Number.isFinite(sa[i]!) || !Number.isFinite(sb[j]!) ? [] : [[sa[i]!, sb[j]!]];
  });
  if (pairs.length < 2) return undefined;
  return { a: Float64Array.from(pairs, (p) => p[0]!), b: Float64Array.from(pairs, (p) => p[1]!) };
}
