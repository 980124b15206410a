/**
 * Generic Object Decoding (GOD) as packaged by MinD-Vis, read the way LEA's create_Kamitani_CLIP_dataset
 * does (spec §4):
 * - `sbj_N.npz`: arr_0 training fMRI [1200, V], arr_2 test fMRI averaged over repeats [50, V], arr_3 the
 *   train_images row of each training sample; keyword boolean ROI masks of length V come first.
 * - ROI grouping: the first 10 keys in stored order, each minus the voxels claimed by earlier ones, empty
 *   groups dropped, concatenated; the group sizes must equal the subject's roi_patch.
 * - z-scoring: one scalar mean and std over the whole training matrix; the test matrix by the rule of
 *   `testNormalisation` (GOD_TEST_STATS).
 * - `images_256.npz`: train_images and test_images, uint8 [N, H, W, 3], kept at their stored size.
 * - Labels, when the three label files are present: ImageNet class (first class whose wnid list holds the
 *   row's WordNet offset, -1 if none) and category index (order of first appearance, train then test).
 * arr_1 (the 1750 unaveraged test trials) is never read: LEA uses only the averaged test set.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { TestNormalisation } from '../config/choice-values.js';
import { BadInputError } from '../errors.js';
import { ndarray } from '../tensors/ndarray.js';
import type { NdArray } from '../tensors/ndarray.js';
import { withNpz } from '../tensors/npz.js';
import {
  assertFinite,
  exists,
  floatMatrix,
  imageRows,
  range,
  readJson,
  requireFile,
  resolveRoiPatch,
  scalarStats,
} from './common.js';
import type { ImageSet, LoadedSubject } from './common.js';

export const GOD_IMAGES_FILE = 'images_256.npz';
export const GOD_LABEL_FILES = [
  'imagenet_class_index.json',
  'imagenet_training_label.csv',
  'imagenet_testing_label.csv',
] as const;
/** LEA takes exactly the first ten stored keys as ROI masks. */
export const GOD_MASK_KEYS = 10;

export interface GodOptions {
  path: string;
  subject: string;
  /** The config's data.roiPatch: overrides roi_patch.json and the paper table. */
  roiPatch?: number[];
  /** The config's data.testNormalisation (default upstream, the authors' rule). */
  testNormalisation?: TestNormalisation;
}

type Stats = { mean: number; std: number };

/**
 * The mean and std the test matrix is normalised with, per data.testNormalisation, from the raw training
 * statistics and the z-scored training matrix. upstream is LEA's (and MinD-Vis's) `tt = normalize(tt,
 * np.mean(tr), np.std(tr))` after `tr = normalize(tr)`: about 0 and 1, so the test rows stay in raw units, which
 * produced the paper's numbers. train-stats applies the training scalars (the textbook rule).
 */
const GOD_TEST_STATS: Record<
  TestNormalisation,
  (train: Stats, zscoredTrain: NdArray, source: string) => Stats
> = {
  upstream: (_train, z, source) => {
    const [rows, cols] = z.shape as [number, number];
    return scalarStats({ cols, data: z.data as Float32Array }, range(rows), range(cols), source);
  },
  'train-stats': (train) => train,
};

interface RoiGroups {
  names: string[];
  sizes: number[];
  /** Voxel columns of the concatenated groups, in order. */
  columns: Int32Array;
  voxels: number;
}

/** The first-ten-keys overlap-removal rule. */
export function godRoiGroups(keys: string[], masks: NdArray[], source: string): RoiGroups {
  const voxels = masks[0]!.shape[0]!;
  masks.forEach((m, i) => {
    if (m.dtype !== 'bool' || m.shape.length !== 1 || m.shape[0] !== voxels) {
      throw new BadInputError(
        `${source}: key '${keys[i]}' (one of the first ${GOD_MASK_KEYS}) must be a boolean ROI mask of length ${voxels}, found ${m.dtype} [${m.shape.join(', ')}]`,
      );
    }
  });
  const claimed = new Uint8Array(voxels);
  const names: string[] = [];
  const sizes: number[] = [];
  const columns: number[] = [];
  masks.forEach((m, i) => {
    const bits = m.data as Uint8Array;
    const group: number[] = [];
    for (let v = 0; v < voxels; v++) {
      if (bits[v] && !claimed[v]) group.push(v);
      if (bits[v]) claimed[v] = 1;
    }
    if (group.length > 0) {
      names.push(keys[i]!);
      sizes.push(group.length);
      columns.push(...group);
    }
  });
  return { names, sizes, columns: Int32Array.from(columns), voxels };
}

export async function loadGod(opts: GodOptions): Promise<LoadedSubject> {
  const { path, subject } = opts;
  if (!/^sbj_[0-9]+$/.test(subject))
    throw new BadInputError(`GOD subject must look like sbj_N, got '${subject}'`);
  const sbjPath = await requireFile(join(path, `${subject}.npz`), `GOD fMRI file for ${subject}`);
  const imgPath = await requireFile(join(path, GOD_IMAGES_FILE), 'GOD image file');
  const sources = [sbjPath, imgPath];
  const given = await resolveRoiPatch('god', path, subject, sources, opts.roiPatch);

  const fmri = await withNpz(sbjPath, async (npz) => {
    const keys = npz.keys;
    if (keys.length < GOD_MASK_KEYS)
      throw new BadInputError(
        `${sbjPath}: has ${keys.length} arrays, fewer than the ${GOD_MASK_KEYS} ROI masks expected`,
      );
    for (const k of ['arr_0', 'arr_2', 'arr_3'])
      if (!npz.has(k)) throw new BadInputError(`${sbjPath}: missing array '${k}'`);
    const maskKeys = keys.slice(0, GOD_MASK_KEYS);
    const masks: NdArray[] = [];
    for (const k of maskKeys) masks.push(await npz.read(k));
    const groups = godRoiGroups(maskKeys, masks, sbjPath);
    const roiPatch = given?.sizes ?? groups.sizes;
    if (groups.sizes.join() !== roiPatch.join()) {
      throw new BadInputError(
        `${sbjPath}: ROI groups from the first ${GOD_MASK_KEYS} keys (${groups.names.join(', ')}) have sizes [${groups.sizes.join(', ')}] but roi_patch for ${subject} is [${roiPatch.join(', ')}]`,
      );
    }
    const train = floatMatrix(await npz.read('arr_0'), sbjPath, 'arr_0 (training fMRI)');
    const test = floatMatrix(await npz.read('arr_2'), sbjPath, 'arr_2 (averaged test fMRI)');
    for (const [m, name] of [
      [train, 'arr_0'],
      [test, 'arr_2'],
    ] as const) {
      if (m.cols !== groups.voxels)
        throw new BadInputError(
          `${sbjPath}: ${name} has ${m.cols} voxels but the ROI masks have ${groups.voxels}`,
        );
    }
    const index = await npz.read('arr_3');
    if (
      (index.dtype !== 'int32' && index.dtype !== 'int64') ||
      index.shape.length !== 1 ||
      index.shape[0] !== train.rows
    ) {
      throw new BadInputError(
        `${sbjPath}: arr_3 must be ${train.rows} integer image indices, found ${index.dtype} [${index.shape.join(', ')}]`,
      );
    }
    assertFinite(train, groups.columns, sbjPath, 'arr_0');
    assertFinite(test, groups.columns, sbjPath, 'arr_2');
    // arr_1 (unaveraged test trials) is never loaded; its row count is how many trials the test set averages
    const repeats = npz.has('arr_1') ? ((await npz.header('arr_1')).shape[0] ?? 0) : 0;
    return {
      groups,
      train,
      test,
      repeats,
      imageIndex: Array.from(index.data as ArrayLike<number | bigint>, Number),
    };
  });

  const { groups, train, test, repeats, imageIndex } = fmri;
  const stats = scalarStats(train, range(train.rows), groups.columns, sbjPath);
  const normalise = (m: typeof train, { mean, std }: Stats): NdArray => {
    const K = groups.columns.length;
    const out = ndarray('float32', [m.rows, K]);
    const o = out.data as Float32Array;
    for (let r = 0; r < m.rows; r++) {
      const base = r * m.cols;
      for (let j = 0; j < K; j++) o[r * K + j] = (m.data[base + groups.columns[j]!]! - mean) / std;
    }
    return out;
  };
  const trainFmri = normalise(train, stats);
  const testRule = opts.testNormalisation ?? 'upstream';
  const testStats = GOD_TEST_STATS[testRule](stats, trainFmri, sbjPath);

  const { train: allTrain, test: testRows } = await readGodImages(imgPath);
  if (testRows.count !== test.rows)
    throw new BadInputError(
      `${imgPath}: ${testRows.count} test_images but ${sbjPath} arr_2 has ${test.rows} rows`,
    );
  const bad = imageIndex.findIndex((i) => !Number.isInteger(i) || i < 0 || i >= allTrain.count);
  if (bad >= 0)
    throw new BadInputError(
      `${sbjPath}: arr_3[${bad}] = ${imageIndex[bad]} is not a row of train_images (0..${allTrain.count - 1})`,
    );

  const result: LoadedSubject = {
    dataset: 'god',
    subject,
    roiNames: groups.names,
    roiSizes: groups.sizes,
    roiPatchSource: given?.source ?? 'masks',
    normalisation: { ...stats, statsFrom: 'train', test: { rule: testRule, ...testStats } },
    train: {
      fmri: trainFmri,
      images: allTrain.gathered(imageIndex),
      stimuli: imageIndex.map(godStimulus.train),
    },
    test: {
      fmri: normalise(test, testStats),
      images: testRows,
      stimuli: Array.from(range(testRows.count), godStimulus.test),
    },
    testTrialsAveraged: repeats,
    sources,
  };

  const labels = await loadGodLabels(path, allTrain.count, testRows.count);
  if (labels) {
    sources.push(...labels.files);
    result.train.labels = gatherLabels(labels.train, imageIndex);
    result.test.labels = gatherLabels(labels.test, range(testRows.count));
    result.unmatchedLabels = imageIndex.filter((i) => labels.train[i]![0] === -1).length;
  }
  return result;
}

/** GOD's stimulus ids: rows of images_256.npz's train_images and test_images, shared by every subject. */
const godStimulus = { train: (row: number) => `train/${row}`, test: (row: number) => `test/${row}` };

/** images_256.npz's two arrays, checked; `gathered` views the training rows in a subject's trial order. */
async function readGodImages(imgPath: string) {
  const images = await withNpz(imgPath, async (npz) => {
    for (const k of ['train_images', 'test_images'])
      if (!npz.has(k)) throw new BadInputError(`${imgPath}: missing array '${k}'`);
    return { train: await npz.read('train_images'), test: await npz.read('test_images') };
  });
  const test = imageRows(images.test, imgPath, 'test_images');
  const train = imageRows(images.train, imgPath, 'train_images');
  if (test.height !== train.height || test.width !== train.width) {
    throw new BadInputError(
      `${imgPath}: train_images are ${train.height}x${train.width} but test_images are ${test.height}x${test.width}`,
    );
  }
  return {
    train: Object.assign(train, {
      gathered: (index: ArrayLike<number>) => imageRows(images.train, imgPath, 'train_images', index),
    }),
    test,
  };
}

/** GOD's image set: every training and test image of images_256.npz, in stored order (no fMRI is read). */
export async function loadGodImages(path: string): Promise<ImageSet> {
  const imgPath = await requireFile(join(path, GOD_IMAGES_FILE), 'GOD image file');
  const { train, test } = await readGodImages(imgPath);
  return {
    dataset: 'god',
    train: { images: train, stimuli: Array.from(range(train.count), godStimulus.train) },
    test: { images: test, stimuli: Array.from(range(test.count), godStimulus.test) },
    sources: [imgPath],
  };
}

function gatherLabels(rows: [number, number][], index: ArrayLike<number>): NdArray {
  const out = ndarray('int64', [index.length, 2]);
  const d = out.data as BigInt64Array;
  for (let i = 0; i < index.length; i++) {
    const [c, nl] = rows[index[i]!]!;
    d[2 * i] = BigInt(c);
    d[2 * i + 1] = BigInt(nl);
  }
  return out;
}

const classIndexSchema = z.record(z.string().regex(/^[0-9]+$/), z.array(z.string()).min(2));

/** GOD stimulus ids ("offset.imageid") from the first CSV column, one per line. */
async function readStimulusOffsets(path: string, expected: number): Promise<number[]> {
  const text = await readFile(path, 'utf8').catch((e: Error) => {
    throw new BadInputError(`${path}: cannot read: ${e.message}`);
  });
  const lines = text.split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const offsets = lines.map((line, i) => {
    const first = line.split(',')[0]!.replace(/^"(.*)"$/, '$1');
    const m = /^\s*([0-9]+)(\.[0-9]*)?\s*$/.exec(first);
    if (!m)
      throw new BadInputError(
        `${path}: line ${i + 1} does not start with a GOD stimulus id "offset.imageid": ${JSON.stringify(line)}`,
      );
    return Number(m[1]);
  });
  if (offsets.length !== expected)
    throw new BadInputError(`${path}: ${offsets.length} rows but there are ${expected} images`);
  return offsets;
}

async function loadGodLabels(
  dir: string,
  trainCount: number,
  testCount: number,
): Promise<{ train: [number, number][]; test: [number, number][]; files: string[] } | undefined> {
  const files = GOD_LABEL_FILES.map((f) => join(dir, f));
  const present = await Promise.all(files.map(exists));
  if (!present.some(Boolean)) return undefined;
  const missing = files.filter((_, i) => !present[i]);
  if (missing.length > 0)
    throw new BadInputError(
      `${missing.join(', ')}: missing (GOD labels need all of ${GOD_LABEL_FILES.join(', ')})`,
    );
  const [indexFile, trainCsv, testCsv] = files as [string, string, string];
  const parsed = classIndexSchema.safeParse(await readJson(indexFile));
  if (!parsed.success)
    throw new BadInputError(`${indexFile}: must map class indices to [wnid, ..., description]`);
  // Python enumerates the file's items; the standard file lists "0".."n-1" in order, so the key is the index.
  const n = Object.keys(parsed.data).length;
  const wnids: number[][] = [];
  for (let c = 0; c < n; c++) {
    const entry = parsed.data[String(c)];
    if (!entry) throw new BadInputError(`${indexFile}: class keys must be 0..${n - 1}; '${c}' is missing`);
    wnids.push(
      entry.slice(0, -1).map((w) => {
        if (!/^n[0-9]+$/.test(w))
          throw new BadInputError(`${indexFile}: class ${c} has a malformed wnid '${w}'`);
        return Number(w.slice(1));
      }),
    );
  }
  const category = new Map<number, number>();
  const label = (offset: number): [number, number] => {
    if (!category.has(offset)) category.set(offset, category.size);
    return [wnids.findIndex((w) => w.includes(offset)), category.get(offset)!];
  };
  const train = (await readStimulusOffsets(trainCsv, trainCount)).map(label);
  const test = (await readStimulusOffsets(testCsv, testCount)).map(label);
  return { train, test, files };
}
