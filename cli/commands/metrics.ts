/**
 * `lea metrics NAME --pred P.npy --target T.npy [--json]`: one metric of spec §5 on saved arrays.
 * --pred may carry a leading sample axis ([S, ...] over the target's shape; for nway [S, N, C]): the metric
 * is then computed per sample and reported as the mean with min, max and each sample's value.
 * With --json the output is one object: metric, value, chance and the metric's extras. Encoding 2-way
 * identification is `two-way --measure pcc` on voxel rows.
 */
import { Argument, type Command } from 'commander';
import { Rng } from '../../lib/compute/rng.js';
import { BadInputError } from '../../lib/errors.js';
import { itemsFrom, overSamples, type Items, type MetricResult } from '../../lib/metrics/common.js';
import { meanSquaredError, perSamplePearson, perVoxelPearson } from '../../lib/metrics/encoding.js';
import { frechetDistance } from '../../lib/metrics/fid.js';
import { featureTwoWay, twoWayFromMatrix, twoWayIdentification } from '../../lib/metrics/identification.js';
import { argmaxRows, nWayTop1, NWAY_TRIALS, PAPER_NWAY } from '../../lib/metrics/nway.js';
import { SSIM_DATA_RANGE, ssimPerImage, ssimStack } from '../../lib/metrics/ssim.js';
import { ndarray, type NdArray } from '../../lib/tensors/ndarray.js';
import { readNpy } from '../../lib/tensors/npy.js';

const NAMES = [
  'nway',
  'two-way',
  'ssim',
  'ssim-stack',
  'feature-two-way',
  'fid',
  'pearson',
  'pearson-voxel',
  'mse',
] as const;
type MetricName = (typeof NAMES)[number];
const MEASURES = ['mse', 'pcc', 'snr', 'lpips'] as const;

interface MetricFlags {
  pred?: string;
  target?: string;
  json?: boolean;
  measure?: string;
  distances?: string;
  n: string;
  trials: string;
  seed: string;
  dataRange: string;
}

function integerFlag(value: string, flag: string, min: number): number {
  const v = Number(value);
  if (!Number.isInteger(v) || v < min)
    throw new BadInputError(`${flag} must be an integer >= ${min}, got '${value}'`);
  return v;
}

async function load(path: string | undefined, flag: string, name: string): Promise<NdArray> {
  if (path === undefined) throw new BadInputError(`metric ${name} needs ${flag}`);
  return readNpy(path);
}

/** The arrays along the first axis of `arr`, each as its own NdArray (views, no copy). */
function unstack(arr: NdArray): NdArray[] {
  const [count = 0, ...rest] = arr.shape;
  const size = rest.reduce((a, b) => a * b, 1);
  return Array.from({ length: count }, (_, s) =>
    ndarray(arr.dtype, rest, arr.data.subarray(s * size, (s + 1) * size)),
  );
}

/**
 * Splits --pred into per-sample arrays: a leading sample axis when pred has `perSampleRank` + 1 axes (or,
 * without a fixed rank, one more axis than --target with the same trailing shape).
 */
function samplesOf(pred: NdArray, target: NdArray, perSampleRank: number | null): NdArray[] {
  const sampled =
    perSampleRank === null
      ? pred.shape.length === target.shape.length + 1 && pred.shape.slice(1).join() === target.shape.join()
      : pred.shape.length === perSampleRank + 1;
  if (sampled && (pred.shape[0] ?? 0) === 0) throw new BadInputError('--pred has an empty sample axis');
  return sampled ? unstack(pred) : [pred];
}

function checkSameShape(pred: Items, target: Items): void {
  if (pred.count !== target.count || pred.itemShape.join() !== target.itemShape.join()) {
    throw new BadInputError(
      `--pred has shape [${pred.count}, ${pred.itemShape.join(', ')}] but --target has [${target.count}, ${target.itemShape.join(', ')}]`,
    );
  }
}

/** A metric's result with the extras the CLI adds (measure, seed, sample count). */
type Report = MetricResult & Record<string, unknown>;

async function compute(name: MetricName, flags: MetricFlags): Promise<Report> {
  if (name === 'two-way' && flags.measure === 'lpips') {
    // The CLI holds no LPIPS network: take its distances, LPIPS(pred_i, target_j), precomputed.
    const d = itemsFrom(await load(flags.distances, '--distances', 'two-way --measure lpips'), '--distances');
    if (d.itemShape.length !== 1 || d.size !== d.count) {
      throw new BadInputError(
        `--distances must be a square [N, N] matrix, got [${d.count}, ${d.itemShape.join(', ')}]`,
      );
    }
    return { measure: 'lpips', ...twoWayFromMatrix(d.data, d.count, true) };
  }
  if (name === 'two-way' && !(MEASURES as readonly string[]).includes(flags.measure ?? '')) {
    throw new BadInputError(`two-way needs --measure ${MEASURES.join('|')}, got '${flags.measure ?? ''}'`);
  }
  const predArr = await load(flags.pred, '--pred', name);
  const targetArr = await load(flags.target, '--target', name);
  let perSample: (pred: Items, i: number) => Report;
  let perSampleRank: number | null = null;
  const target = itemsFrom(targetArr, '--target');
  if (name === 'nway') {
    perSampleRank = 2;
    const n = integerFlag(flags.n, '--n', 2);
    const trials = integerFlag(flags.trials, '--trials', 1);
    const seed = integerFlag(flags.seed, '--seed', 0);
    // --target: the classifier's probabilities for the ground truths [N, C], or their classes [N].
    if (targetArr.shape.length === 1 && !target.data.every(Number.isInteger)) {
      throw new BadInputError('--target as a 1-D array must hold integer class ids');
    }
    const classes = targetArr.shape.length === 1 ? Int32Array.from(target.data) : argmaxRows(target);
    const classCount = predArr.shape[predArr.shape.length - 1] ?? 0;
    if (n > classCount) throw new BadInputError(`--n ${n} exceeds the ${classCount} classes in --pred`);
    perSample = (pred, i) => ({
      seed,
      ...nWayTop1(pred, classes, { n, trials, rng: new Rng(seed, `nway-sample-${i}`) }),
    });
  } else if (name === 'fid') {
    // Real (--target) and generated (--pred) feature sets may differ in size.
    perSampleRank = targetArr.shape.length;
    perSample = (pred) => ({ ...frechetDistance(target, pred) });
  } else {
    const dataRange = Number(flags.dataRange);
    if (!(dataRange > 0) || !Number.isFinite(dataRange)) {
      throw new BadInputError(`--data-range must be a positive number, got '${flags.dataRange}'`);
    }
    const paired: Record<Exclude<MetricName, 'nway' | 'fid'>, (p: Items, t: Items) => Report> = {
      'two-way': (p, t) => ({
        measure: flags.measure,
        ...twoWayIdentification(p, t, flags.measure as 'mse' | 'pcc' | 'snr'),
      }),
      ssim: (p, t) => ({ ...ssimPerImage(p, t, dataRange) }),
      'ssim-stack': (p, t) => ({ ...ssimStack(p, t, dataRange) }),
      'feature-two-way': (p, t) => ({ ...featureTwoWay(p, t) }),
      pearson: (p, t) => ({ ...perSamplePearson(p, t) }),
      'pearson-voxel': (p, t) => ({ ...perVoxelPearson(p, t) }),
      mse: (p, t) => ({ ...meanSquaredError(p, t) }),
    };
    const f = paired[name];
    perSample = (pred) => {
      checkSameShape(pred, target);
      return f(pred, target);
    };
  }
  const samples = samplesOf(predArr, targetArr, perSampleRank);
  const results = samples.map((s, i) =>
    perSample(itemsFrom(s, samples.length > 1 ? `--pred sample ${i}` : '--pred'), i),
  );
  return samples.length > 1 ? { samples: samples.length, ...overSamples(results) } : results[0]!;
}

function format(v: unknown): string {
  return typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(6)) : String(v);
}

export function registerMetricsCommand(program: Command): void {
  program
    .command('metrics')
    .description('compute one decoding or encoding metric (spec §5) on .npy arrays')
    .addArgument(new Argument('<name>', 'the metric').choices(NAMES))
    .option('--pred <path>', 'predictions .npy; a leading sample axis is averaged over (mean, min, max)')
    .option('--target <path>', 'ground truth .npy (nway: classifier probabilities [N, C] or classes [N])')
    .option('--json', 'print one JSON object: metric, value, chance and extras')
    .option('--measure <measure>', `two-way: ${MEASURES.join('|')}`)
    .option('--distances <path>', 'two-way --measure lpips: precomputed LPIPS(pred_i, target_j), [N, N]')
    .option('--n <n>', 'nway: classes per trial', String(PAPER_NWAY))
    .option('--trials <count>', 'nway: trials per item', String(NWAY_TRIALS))
    .option('--seed <seed>', 'nway: seed of the distractor draws', '0')
    .option('--data-range <range>', 'ssim, ssim-stack: the data range', String(SSIM_DATA_RANGE))
    .action(async (name: MetricName, flags: MetricFlags) => {
      const result = await compute(name, flags);
      if (flags.json) {
        console.log(JSON.stringify({ metric: name, ...result }));
        return;
      }
      const extras = Object.entries(result).filter(
        ([k, v]) => !['value', 'chance'].includes(k) && (typeof v === 'number' || typeof v === 'string'),
      );
      console.log(
        `${name}: ${format(result.value)} (chance ${result.chance === null ? 'n/a' : format(result.chance)})` +
          extras.map(([k, v]) => `, ${k} ${format(v)}`).join(''),
      );
    });
}
