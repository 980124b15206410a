/**
 * What the GOD and BOLD5000 loaders share: the shape of a loaded subject, the paper's roi_patch tables,
 * scalar z-scoring, and strict checks that turn every malformed input into a BadInputError naming the file.
 */
import { chmod, mkdir, mkdtemp, readFile, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import type { TestNormalisation } from '../config/choice-values.js';
import { BadInputError } from '../errors.js';
import type { NdArray } from '../tensors/ndarray.js';

export type DatasetName = 'god' | 'bold5000';

/** Images of one split, one row per sample, without materialising a gathered copy. */
export interface ImageRows {
  count: number;
  height: number;
  width: number;
  /** The H*W*3 uint8 bytes of sample i (a view into the source; do not modify). */
  row(i: number): Uint8Array;
}

export interface Split {
  /** float32 [N, K], normalised (LoadedSubject.normalisation). */
  fmri: NdArray;
  images: ImageRows;
  /** The stimulus of each row, by an id that is the same for every subject of the dataset (see ImageSet). */
  stimuli: string[];
  /** int64 [N, 2]: ImageNet class index (-1 if unmatched), dataset category index. GOD only. */
  labels?: NdArray;
}

export interface LoadedSubject {
  dataset: DatasetName;
  subject: string;
  roiNames: string[];
  roiSizes: number[];
  /** Where the ROI group sizes came from (see resolveRoiPatch). */
  roiPatchSource: RoiPatchSource;
  /**
   * The scalar z-scoring of the training rows; `test`, GOD only: the rule the test rows were normalised by
   * (data.testNormalisation) and its mean and std. BOLD5000 z-scores all trials with the one mean and std.
   */
  normalisation: {
    mean: number;
    std: number;
    statsFrom: 'train' | 'all_trials';
    test?: { rule: TestNormalisation; mean: number; std: number };
  };
  train: Split;
  test: Split;
  /** How many single trials were averaged into the test rows, in total. */
  testTrialsAveraged: number;
  /** Training rows whose ImageNet class was not found (GOD labels only). */
  unmatchedLabels?: number;
  /** Every file the result depends on, for checksums. */
  sources: string[];
}

/**
 * A dataset's images without fMRI: what the image side (tokenizer, MaskGIT, image features) trains on, the same
 * for every subject (spec §1). Rows are distinct stimuli; `stimuli` gives each row's id (as Split.stimuli).
 */
export interface ImageSet {
  dataset: DatasetName;
  train: { images: ImageRows; stimuli: string[] };
  test: { images: ImageRows; stimuli: string[] };
  sources: string[];
}

/** roi_patch per subject from the authors' configs (spec §4). */
export const PAPER_ROI_PATCH: Readonly<Record<DatasetName, Readonly<Record<string, readonly number[]>>>> = {
  god: {
    sbj_1: [1004, 801, 476, 588, 431, 249, 157, 760],
    sbj_2: [757, 727, 603, 416, 372, 124, 576, 829],
    sbj_3: [872, 826, 605, 630, 770, 262, 306, 372],
    sbj_4: [719, 652, 676, 597, 494, 236, 308, 451],
    sbj_5: [659, 676, 649, 729, 661, 301, 246, 449],
  },
  bold5000: {
    CSI1: [495, 342, 288, 331, 229],
    CSI2: [495, 180, 370, 84],
    CSI3: [607, 392, 273, 194],
    CSI4: [764, 872, 614, 344, 193],
  },
};

/**
 * A dataset folder may carry `roi_patch.json` ({subject: [sizes]}) for subjects outside the paper's table
 * (the synthetic world at tiny/small scale writes one); it takes precedence over the table.
 */
export const ROI_PATCH_FILE = 'roi_patch.json';

/**
 * Where a subject's ROI group sizes come from, first found: the config's `data.roiPatch`, the dataset's
 * roi_patch.json, the paper's table, or (none of these) the sizes the ROI masks or files themselves give.
 */
export type RoiPatchSource = 'config' | 'roi_patch.json' | 'paper' | 'masks';

const roiPatchSchema = z.record(z.string(), z.array(z.number().int().positive()).min(1));

/** The ROI group sizes given for a subject (RoiPatchSource's order), or undefined: derive them from the data. */
export async function resolveRoiPatch(
  dataset: DatasetName,
  dir: string,
  subject: string,
  sources: string[],
  fromConfig?: number[],
): Promise<{ sizes: number[]; source: RoiPatchSource } | undefined> {
  if (fromConfig) return { sizes: fromConfig, source: 'config' };
  const file = join(dir, ROI_PATCH_FILE);
  if (await exists(file)) {
    const parsed = roiPatchSchema.safeParse(await readJson(file));
    if (!parsed.success)
      throw new BadInputError(`${file}: must map subject ids to lists of positive ROI sizes`);
    const sizes = parsed.data[subject];
    if (sizes) {
      sources.push(file);
      return { sizes, source: 'roi_patch.json' };
    }
  }
  const table = PAPER_ROI_PATCH[dataset][subject];
  return table ? { sizes: [...table], source: 'paper' } : undefined;
}

export async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

export async function requireFile(path: string, what: string): Promise<string> {
  const s = await stat(path).catch(() => undefined);
  if (!s?.isFile()) throw new BadInputError(`${path}: missing ${what}`);
  return path;
}

export async function readJson(path: string): Promise<unknown> {
  const text = await readFile(path, 'utf8').catch((e: Error) => {
    throw new BadInputError(`${path}: cannot read: ${e.message}`);
  });
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new BadInputError(`${path}: invalid JSON (${(e as Error).message})`);
  }
}

/** Lines as np.loadtxt(dtype=str) sees them: '#' comments and blank lines dropped, one token per line. */
export async function readNameList(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch((e: Error) => {
    throw new BadInputError(`${path}: cannot read: ${e.message}`);
  });
  const names: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    if (/\s/.test(line))
      throw new BadInputError(`${path}: line ${i + 1} holds more than one name: ${JSON.stringify(line)}`);
    names.push(line);
  });
  return names;
}

/** A 2-D float array's row-major accessor, or a clear error. */
export function floatMatrix(
  arr: NdArray,
  source: string,
  what: string,
): { rows: number; cols: number; data: Float32Array | Float64Array } {
  if ((arr.dtype !== 'float32' && arr.dtype !== 'float64') || arr.shape.length !== 2) {
    throw new BadInputError(
      `${source}: ${what} must be a 2-D float array, found ${arr.dtype} [${arr.shape.join(', ')}]`,
    );
  }
  return { rows: arr.shape[0]!, cols: arr.shape[1]!, data: arr.data as Float32Array | Float64Array };
}

/** Throws naming the first NaN or infinity among the selected columns. */
export function assertFinite(
  m: { rows: number; cols: number; data: Float32Array | Float64Array },
  columns: Int32Array,
  source: string,
  what: string,
): void {
  for (let r = 0; r < m.rows; r++) {
    const base = r * m.cols;
    for (let j = 0; j < columns.length; j++) {
      const v = m.data[base + columns[j]!]!;
      if (!Number.isFinite(v))
        throw new BadInputError(
          `${source}: ${what} has a non-finite value (${v}) at row ${r}, voxel ${columns[j]}`,
        );
    }
  }
}

/** Scalar mean and population std (numpy's np.mean / np.std) of the selected columns of some rows, in float64. */
export function scalarStats(
  m: { cols: number; data: Float32Array | Float64Array },
  rows: ArrayLike<number>,
  columns: Int32Array,
  source: string,
): { mean: number; std: number } {
  let sum = 0;
  for (let i = 0; i < rows.length; i++) {
    const base = rows[i]! * m.cols;
    for (let j = 0; j < columns.length; j++) sum += m.data[base + columns[j]!]!;
  }
  const n = rows.length * columns.length;
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < rows.length; i++) {
    const base = rows[i]! * m.cols;
    for (let j = 0; j < columns.length; j++) {
      const d = m.data[base + columns[j]!]! - mean;
      ss += d * d;
    }
  }
  const std = Math.sqrt(ss / n);
  if (!(n > 0) || !(std > 0))
    throw new BadInputError(`${source}: cannot z-score: the training values have zero variance`);
  return { mean, std };
}

/** Identity row index 0..n-1. */
export function range(n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => i);
}

/** An image array [N, H, W, 3] uint8 as rows, optionally gathered through `index`. */
export function imageRows(arr: NdArray, source: string, what: string, index?: ArrayLike<number>): ImageRows {
  if (arr.dtype !== 'uint8' || arr.shape.length !== 4 || arr.shape[3] !== 3) {
    throw new BadInputError(
      `${source}: ${what} must be uint8 [N, H, W, 3], found ${arr.dtype} [${arr.shape.join(', ')}]`,
    );
  }
  const [n, h, w] = arr.shape as [number, number, number, number];
  const stride = h * w * 3;
  const data = arr.data as Uint8Array;
  const count = index ? index.length : n;
  return {
    count,
    height: h,
    width: w,
    row: (i) => {
      const r = index ? index[i]! : i;
      return data.subarray(r * stride, (r + 1) * stride);
    },
  };
}

/** An output folder may be absent or empty; anything else is refused rather than overwritten. */
export async function assertUsableOutput(out: string): Promise<void> {
  const entries = await readdir(out).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw new BadInputError(`${out}: output is not a usable directory (${e.message})`);
  });
  if (entries.length > 0) throw new BadInputError(`${out}: output directory exists and is not empty`);
}

/**
 * Runs `fill` on a fresh temp folder beside `out` and renames it to `out` only if `fill` succeeds, so a
 * failure leaves nothing at `out`.
 */
export async function withOutputDir<T>(out: string, fill: (tmp: string) => Promise<T>): Promise<T> {
  await assertUsableOutput(out);
  await mkdir(dirname(out), { recursive: true });
  const tmp = await mkdtemp(`${out}.tmp-`);
  await chmod(tmp, 0o755); // mkdtemp makes it private; the output is an ordinary folder
  try {
    const result = await fill(tmp);
    // an empty pre-existing folder is replaced (rmdir cannot remove content)
    await rmdir(out).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT')
        throw new BadInputError(`${out}: cannot replace the output directory (${e.message})`);
    });
    await rename(tmp, out);
    return result;
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
