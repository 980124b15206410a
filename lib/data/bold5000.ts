/**
 * BOLD5000 as packaged by MinD-Vis, read the way LEA's create_BOLD5000_CLIP_dataset does (spec §4):
 * - Betas: `BOLD5000_GLMsingle_ROI_betas/py/<subject>_*{LH,RH}{EarlyVis,LOC,OPA,PPA,RSC}.npy`, each
 *   [trials, voxels]; concatenated along voxels in the ROI order EarlyVis, LOC, OPA, PPA, RSC, and within
 *   an ROI by sorted file name (LH before RH). roi_patch cuts the result into contiguous groups, so only
 *   its total is checked against the voxel count (CSI2/CSI3 have 4 groups for 5 named ROIs).
 * - z-scoring: one scalar mean and std over all of the subject's trials, before the split.
 * - Trial order: `BOLD5000_Stimuli/Stimuli_Presentation_Lists/<subject>/<sorted session dirs>/<sorted
 *   *.txt>`, one image name per line, a leading `rep_` stripped.
 * - Split: for each name of `Scene_Stimuli/repeated_stimuli_113_list.txt` presented to the subject, the
 *   mean of its trials is a test row (image: that stimulus); every other trial is a single-trial training row.
 * - Images: `Scene_Stimuli/Presented_Stimuli/img_dict.npy`, a pickled dict name → uint8 [H, W, 3], read by
 *   the strict non-executing reader in lib/tensors/pickle.ts.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BadInputError } from '../errors.js';
import { ndarray } from '../tensors/ndarray.js';
import { readNpy } from '../tensors/npy.js';
import { readImageDictNpy } from '../tensors/pickle.js';
import {
  assertFinite,
  floatMatrix,
  range,
  readNameList,
  requireFile,
  resolveRoiPatch,
  scalarStats,
} from './common.js';
import type { ImageRows, ImageSet, LoadedSubject } from './common.js';

export const BOLD_ROIS = ['EarlyVis', 'LOC', 'OPA', 'PPA', 'RSC'] as const;
export const BOLD_BETA_DIR = join('BOLD5000_GLMsingle_ROI_betas', 'py');
export const BOLD_STIMULI_DIR = 'BOLD5000_Stimuli';
export const BOLD_LIST_DIR = join(BOLD_STIMULI_DIR, 'Stimuli_Presentation_Lists');
export const BOLD_REPEATED_FILE = join(BOLD_STIMULI_DIR, 'Scene_Stimuli', 'repeated_stimuli_113_list.txt');
export const BOLD_IMG_DICT = join(BOLD_STIMULI_DIR, 'Scene_Stimuli', 'Presented_Stimuli', 'img_dict.npy');

export interface BoldOptions {
  path: string;
  subject: string;
  /** The config's data.roiPatch: overrides roi_patch.json and the paper table. */
  roiPatch?: number[];
}

/** Python's default str sort (code point order), which LEA's os.listdir(...).sort() uses. */
function pySorted(names: string[]): string[] {
  return [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

async function listDir(dir: string, what: string): Promise<string[]> {
  try {
    return pySorted(await readdir(dir));
  } catch {
    throw new BadInputError(`${dir}: missing ${what}`);
  }
}

/** Beta files of a subject in LEA's concatenation order, with the ROI each belongs to. */
export async function boldBetaFiles(root: string, subject: string): Promise<{ roi: string; file: string }[]> {
  const dir = join(root, BOLD_BETA_DIR);
  const npys = (await listDir(dir, 'ROI beta directory')).filter(
    (f) => f.endsWith('.npy') && f.startsWith(`${subject}_`),
  );
  const out = BOLD_ROIS.flatMap((roi) =>
    npys.filter((f) => f.includes(roi)).map((f) => ({ roi, file: join(dir, f) })),
  );
  if (out.length === 0)
    throw new BadInputError(
      `${dir}: no ROI beta files for ${subject} (${subject}_*{LH,RH}{${BOLD_ROIS.join(',')}}.npy)`,
    );
  return out;
}

/** Image names in trial order, from the sorted session folders of the subject's presentation lists. */
export async function boldTrialNames(root: string, subject: string, sources: string[]): Promise<string[]> {
  const dir = join(root, BOLD_LIST_DIR, subject);
  const names: string[] = [];
  for (const session of await listDir(dir, `presentation list directory for ${subject}`)) {
    const sdir = join(dir, session);
    if (!(await stat(sdir)).isDirectory()) continue;
    for (const f of await listDir(sdir, 'session directory')) {
      if (!f.endsWith('.txt')) continue;
      const file = join(sdir, f);
      sources.push(file);
      for (const n of await readNameList(file)) names.push(n.startsWith('rep_') ? n.slice(4) : n);
    }
  }
  return names;
}

/**
 * Checks that each named image is in the dictionary, [H, W, 3] and of one shared size; returns a view of
 * images by a list of names.
 */
function imageRowsOf(
  images: Awaited<ReturnType<typeof readImageDictNpy>>,
  names: Iterable<string>,
  file: string,
): (rowNames: string[]) => ImageRows {
  let shape: number[] | undefined;
  for (const n of names) {
    const img = images.get(n);
    if (!img) throw new BadInputError(`${file}: no image for presented stimulus '${n}'`);
    if (img.shape.length !== 3 || img.shape[2] !== 3)
      throw new BadInputError(`${file}: image '${n}' has shape [${img.shape.join(', ')}], not [H, W, 3]`);
    shape ??= img.shape;
    if (img.shape.join() !== shape.join()) {
      throw new BadInputError(
        `${file}: image '${n}' is [${img.shape.join(', ')}] but others are [${shape.join(', ')}]; they must share one size`,
      );
    }
  }
  if (!shape) throw new BadInputError(`${file}: no images`);
  const [height, width] = shape as [number, number];
  return (rowNames) => ({
    count: rowNames.length,
    height,
    width,
    row: (i) => images.get(rowNames[i]!)!.data as Uint8Array,
  });
}

/**
 * BOLD5000's image set: the repeated stimuli (the test set, in the list's order) and every other image of the
 * dictionary (training, in sorted name order). One set for all subjects; CSI4, who saw fewer sessions, saw a
 * subset of it.
 */
export async function loadBold5000Images(path: string): Promise<ImageSet> {
  const repeatedFile = await requireFile(join(path, BOLD_REPEATED_FILE), 'list of repeated stimuli');
  const imgDictFile = await requireFile(join(path, BOLD_IMG_DICT), 'image dictionary');
  const images = await readImageDictNpy(imgDictFile);
  const repeated = new Set(await readNameList(repeatedFile));
  const test = [...repeated].filter((n) => images.has(n));
  const train = pySorted([...images.keys()].filter((n) => !repeated.has(n)));
  const rowsOf = imageRowsOf(images, [...train, ...test], imgDictFile);
  return {
    dataset: 'bold5000',
    train: { images: rowsOf(train), stimuli: train },
    test: { images: rowsOf(test), stimuli: test },
    sources: [repeatedFile, imgDictFile],
  };
}

export async function loadBold5000(opts: BoldOptions): Promise<LoadedSubject> {
  const { path, subject } = opts;
  if (!/^CSI[0-9]+$/.test(subject))
    throw new BadInputError(`BOLD5000 subject must look like CSIn, got '${subject}'`);
  const betaFiles = await boldBetaFiles(path, subject);
  const sources = betaFiles.map((b) => b.file);
  const given = await resolveRoiPatch('bold5000', path, subject, sources, opts.roiPatch);

  // Concatenate the ROI files column-wise into one float64 [T, K] matrix (one copy of the betas).
  const parts: { roi: string; file: string; m: ReturnType<typeof floatMatrix> }[] = [];
  for (const b of betaFiles) {
    const m = floatMatrix(await readNpy(b.file), b.file, 'ROI betas');
    if (parts.length > 0 && m.rows !== parts[0]!.m.rows) {
      throw new BadInputError(`${b.file}: ${m.rows} trials but ${parts[0]!.file} has ${parts[0]!.m.rows}`);
    }
    assertFinite(m, range(m.cols), b.file, 'ROI betas');
    parts.push({ ...b, m });
  }
  const trials = parts[0]!.m.rows;
  const K = parts.reduce((n, p) => n + p.m.cols, 0);
  const roiVoxels = BOLD_ROIS.map((roi) =>
    parts.filter((p) => p.roi === roi).reduce((n, p) => n + p.m.cols, 0),
  ).filter((n) => n > 0);
  const roiPatch = given?.sizes ?? roiVoxels;
  // roi_patch groups are contiguous cuts; they carry the ROI names only where they coincide with the ROIs
  const groupNames =
    roiVoxels.join() === roiPatch.join()
      ? BOLD_ROIS.filter((roi) => parts.some((p) => p.roi === roi))
      : roiPatch.map((_, i) => `group_${i + 1}`);
  if (roiPatch.reduce((a, b) => a + b, 0) !== K) {
    throw new BadInputError(
      `${join(path, BOLD_BETA_DIR)}: ${subject}'s ROI files hold ${K} voxels (${parts.map((p) => p.m.cols).join(' + ')}) but roi_patch [${roiPatch.join(', ')}] sums to ${roiPatch.reduce((a, b) => a + b, 0)}`,
    );
  }
  const all = new Float64Array(trials * K);
  let col = 0;
  for (const p of parts) {
    for (let r = 0; r < trials; r++) {
      for (let j = 0; j < p.m.cols; j++) all[r * K + col + j] = p.m.data[r * p.m.cols + j]!;
    }
    col += p.m.cols;
  }
  parts.length = 0;
  const matrix = { rows: trials, cols: K, data: all };

  const names = await boldTrialNames(path, subject, sources);
  const listDirPath = join(path, BOLD_LIST_DIR, subject);
  if (names.length !== trials) {
    throw new BadInputError(
      `${listDirPath}: presentation lists name ${names.length} trials but the betas have ${trials}`,
    );
  }
  const repeatedFile = await requireFile(join(path, BOLD_REPEATED_FILE), 'list of repeated stimuli');
  const imgDictFile = await requireFile(join(path, BOLD_IMG_DICT), 'image dictionary');
  sources.push(repeatedFile, imgDictFile);
  const repeated = await readNameList(repeatedFile);
  const images = await readImageDictNpy(imgDictFile);

  const rowsOf = imageRowsOf(images, new Set(names), imgDictFile);

  const byName = new Map<string, number[]>();
  names.forEach((n, i) => byName.set(n, [...(byName.get(n) ?? []), i]));
  const testGroups = [...new Set(repeated)]
    .map((n) => ({ name: n, trials: byName.get(n) ?? [] }))
    .filter((g) => g.trials.length > 0);
  const inTest = new Uint8Array(trials);
  for (const g of testGroups) for (const t of g.trials) inTest[t] = 1;
  const trainTrials = range(trials).filter((t) => !inTest[t]);

  const stats = scalarStats(matrix, range(trials), range(K), join(path, BOLD_BETA_DIR));
  const trainFmri = ndarray('float32', [trainTrials.length, K]);
  const tf = trainFmri.data as Float32Array;
  trainTrials.forEach((t, i) => {
    for (let j = 0; j < K; j++) tf[i * K + j] = (all[t * K + j]! - stats.mean) / stats.std;
  });
  const testFmri = ndarray('float32', [testGroups.length, K]);
  const ef = testFmri.data as Float32Array;
  const acc = new Float64Array(K);
  testGroups.forEach((g, i) => {
    acc.fill(0);
    for (const t of g.trials)
      for (let j = 0; j < K; j++) acc[j]! += (all[t * K + j]! - stats.mean) / stats.std;
    for (let j = 0; j < K; j++) ef[i * K + j] = acc[j]! / g.trials.length;
  });

  const trainNames = Array.from(trainTrials, (t) => names[t]!);
  const testNames = testGroups.map((g) => g.name);
  return {
    dataset: 'bold5000',
    subject,
    roiNames: groupNames,
    roiSizes: roiPatch,
    roiPatchSource: given?.source ?? 'masks',
    normalisation: { ...stats, statsFrom: 'all_trials' },
    train: { fmri: trainFmri, images: rowsOf(trainNames), stimuli: trainNames },
    test: { fmri: testFmri, images: rowsOf(testNames), stimuli: testNames },
    testTrialsAveraged: testGroups.reduce((n, g) => n + g.trials.length, 0),
    sources,
  };
}
