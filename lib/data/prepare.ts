/**
 * `lea data prepare`: loads one subject with the dataset's loader and writes the model-ready split into a
 * local folder: train_fmri.npy / test_fmri.npy (float32 [N, K], normalised as meta.json says), train_images.npy /
 * test_images.npy (uint8 [N, H, W, 3], stored resolution), stimuli.json (each row's stimulus id),
 * train_labels.npy / test_labels.npy (int64 [N, 2], GOD only) and meta.json. prepareImages writes the image
 * side's input: the dataset's (or one subject's) distinct stimuli with their ids, and no fMRI. With
 * `imageSize`, images are resized to imageSize x imageSize as PIL's antialiased resize computes it with the
 * `imageResize` filter (LEA feeds 256 px images to the VQGAN and the metrics, spec §4; BOLD5000's stimuli are
 * 375 px; LEA's src/dataset.py resizes with torchvision Resize((256, 256)), PIL bilinear). LEA's CLIP
 * preprocessing reads the stored image: prepareImages' keepStored keeps it beside the resized one (data.clipInput). Everything is written
 * into a temp folder beside the output and renamed into place at the end, so a failure leaves no output. Images are streamed row by row from the source
 * arrays, so no gathered copy of the image set is ever held.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { relative, resolve } from 'node:path';
import type { TestNormalisation } from '../config/choice-values.js';
import { resizePil } from '../images/resize.js';
import type { ResizeFilter } from '../images/resize.js';
import { NpyFileWriter, writeNpy } from '../tensors/npy.js';
import { loadBold5000, loadBold5000Images } from './bold5000.js';
import { assertUsableOutput, withOutputDir } from './common.js';
import type { DatasetName, ImageRows, ImageSet, LoadedSubject } from './common.js';
import { loadGod, loadGodImages } from './god.js';

export interface PrepareOptions {
  dataset: DatasetName;
  /** Dataset folder (the MinD-Vis layout). */
  path: string;
  subject: string;
  /** Output folder; must not exist or be empty. */
  out: string;
  /** Resize images to imageSize x imageSize (omitted: the stored resolution). */
  imageSize?: number;
  /** ROI group sizes (the config's data.roiPatch); otherwise roi_patch.json, the paper's table, the masks. */
  roiPatch?: number[];
  /** The resize filter (data.imageResize; default bilinear, LEA's). */
  imageResize?: ResizeFilter;
  /** GOD's test fMRI rule (data.testNormalisation; default upstream). */
  testNormalisation?: TestNormalisation;
}

export interface PrepareMeta {
  formatVersion: 1;
  dataset: DatasetName;
  subject: string;
  K: number;
  roiNames: string[];
  roiSizes: number[];
  /** Where roiSizes came from: config, roi_patch.json, paper, or masks (derived from the data). */
  roiPatchSource: LoadedSubject['roiPatchSource'];
  normalisation: LoadedSubject['normalisation'];
  split: { train: number; test: number; testTrialsAveraged: number };
  image: {
    height: number;
    width: number;
    channels: 3;
    resizedFrom?: [number, number];
    resizeFilter?: ResizeFilter;
  };
  labels: { columns: ['imagenet_class', 'category']; unmatchedImagenetClass: number } | null;
  files: string[];
  sources: { path: string; bytes: number; sha256: string }[];
}

async function sha256File(path: string): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { bytes, sha256: hash.digest('hex') };
}

async function sourceHashes(files: string[], root: string): Promise<PrepareMeta['sources']> {
  const out: PrepareMeta['sources'] = [];
  for (const f of files) out.push({ path: relative(resolve(root), resolve(f)), ...(await sha256File(f)) });
  return out;
}

async function writeImages(
  path: string,
  rows: ImageRows,
  size: number | undefined,
  filter: ResizeFilter = 'bilinear',
): Promise<void> {
  const resize = size !== undefined && (size !== rows.height || size !== rows.width);
  const [h, w0] = resize ? [size, size] : [rows.height, rows.width];
  const w = await NpyFileWriter.create(path, 'uint8', [rows.count, h, w0, 3]);
  try {
    for (let i = 0; i < rows.count; i++) {
      const row = rows.row(i);
      await w.write(
        resize
          ? resizePil({ data: row, height: rows.height, width: rows.width, channels: 3 }, h, w0, filter).data
          : row,
      );
    }
  } catch (e) {
    await w.abort();
    throw e;
  }
  await w.close();
}

function imageMeta(
  rows: ImageRows,
  size: number | undefined,
  filter: ResizeFilter = 'bilinear',
): PrepareMeta['image'] {
  if (size === undefined || (size === rows.height && size === rows.width))
    return { height: rows.height, width: rows.width, channels: 3 };
  return {
    height: size,
    width: size,
    channels: 3,
    resizedFrom: [rows.height, rows.width],
    resizeFilter: filter,
  };
}

/** Each row's stimulus id, by split: how a subject's rows find their images' rows in an image set. */
export const STIMULI_FILE = 'stimuli.json';
export interface StimuliFile {
  train: string[];
  test: string[];
}
const stimuliOf = (s: { train: { stimuli: string[] }; test: { stimuli: string[] } }): StimuliFile => ({
  train: s.train.stimuli,
  test: s.test.stimuli,
});

export async function prepareDataset(opts: PrepareOptions): Promise<PrepareMeta> {
  const out = resolve(opts.out);
  await assertUsableOutput(out);
  const loaded = opts.dataset === 'god' ? await loadGod(opts) : await loadBold5000(opts);
  return withOutputDir(out, async (tmp) => {
    const files: string[] = [];
    const put = async (name: string, write: (path: string) => Promise<void>): Promise<void> => {
      await write(`${tmp}/${name}`);
      files.push(name);
    };
    await put('train_fmri.npy', (p) => writeNpy(p, loaded.train.fmri));
    await put('test_fmri.npy', (p) => writeNpy(p, loaded.test.fmri));
    await put('train_images.npy', (p) =>
      writeImages(p, loaded.train.images, opts.imageSize, opts.imageResize),
    );
    await put('test_images.npy', (p) => writeImages(p, loaded.test.images, opts.imageSize, opts.imageResize));
    await put(STIMULI_FILE, (p) => writeFile(p, JSON.stringify(stimuliOf(loaded)) + '\n'));
    if (loaded.train.labels && loaded.test.labels) {
      await put('train_labels.npy', (p) => writeNpy(p, loaded.train.labels!));
      await put('test_labels.npy', (p) => writeNpy(p, loaded.test.labels!));
    }
    const sources = await sourceHashes(loaded.sources, opts.path);
    const meta: PrepareMeta = {
      formatVersion: 1,
      dataset: loaded.dataset,
      subject: loaded.subject,
      K: loaded.train.fmri.shape[1]!,
      roiNames: loaded.roiNames,
      roiSizes: loaded.roiSizes,
      roiPatchSource: loaded.roiPatchSource,
      normalisation: loaded.normalisation,
      split: {
        train: loaded.train.fmri.shape[0]!,
        test: loaded.test.fmri.shape[0]!,
        testTrialsAveraged: loaded.testTrialsAveraged,
      },
      image: imageMeta(loaded.train.images, opts.imageSize, opts.imageResize),
      labels: loaded.train.labels
        ? { columns: ['imagenet_class', 'category'], unmatchedImagenetClass: loaded.unmatchedLabels ?? 0 }
        : null,
      files: [...files, 'meta.json'],
      sources,
    };
    await writeFile(`${tmp}/meta.json`, JSON.stringify(meta, null, 2) + '\n');
    return meta;
  });
}

export interface ImagesOptions {
  dataset: DatasetName;
  path: string;
  /** Only the stimuli this subject saw (imageSide: per-subject); otherwise the dataset's whole image set. */
  subject?: string;
  out: string;
  imageSize?: number;
  imageResize?: ResizeFilter;
  /** Also write the stored images, unresized (STORED_IMAGE_FILES), for CLIP (data.clipInput stored). */
  keepStored?: boolean;
}

/** The image set's images at their stored size, beside the resized train_images.npy and test_images.npy. */
export const STORED_IMAGE_FILES = {
  train: 'train_images_stored.npy',
  test: 'test_images_stored.npy',
} as const;

export interface ImagesMeta {
  formatVersion: 1;
  dataset: DatasetName;
  subject: string | null;
  split: { train: number; test: number };
  image: PrepareMeta['image'];
  files: string[];
  sources: PrepareMeta['sources'];
}

/** A subject's distinct stimuli, in order of first appearance. */
function subjectImageSet(loaded: LoadedSubject): ImageSet {
  const distinct = (split: LoadedSubject['train']) => {
    const seen = new Map<string, number>();
    split.stimuli.forEach((id, i) => seen.has(id) || seen.set(id, i));
    const rows = [...seen.values()];
    const images: ImageRows = { ...split.images, count: rows.length, row: (i) => split.images.row(rows[i]!) };
    return { images, stimuli: [...seen.keys()] };
  };
  return {
    dataset: loaded.dataset,
    train: distinct(loaded.train),
    test: distinct(loaded.test),
    sources: loaded.sources,
  };
}

/**
 * The image side's input (spec §1): train_images.npy and test_images.npy of distinct stimuli, stimuli.json and
 * meta.json, resized as prepareDataset resizes. Without a subject it reads no fMRI and is the same for every
 * subject, so the stages that read it (tokenizer, MaskGIT, image features) run once per dataset.
 */
export async function prepareImages(opts: ImagesOptions): Promise<ImagesMeta> {
  const out = resolve(opts.out);
  await assertUsableOutput(out);
  const set = opts.subject
    ? subjectImageSet(
        await (opts.dataset === 'god' ? loadGod : loadBold5000)({ path: opts.path, subject: opts.subject }),
      )
    : await (opts.dataset === 'god' ? loadGodImages : loadBold5000Images)(opts.path);
  return withOutputDir(out, async (tmp) => {
    await writeImages(`${tmp}/train_images.npy`, set.train.images, opts.imageSize, opts.imageResize);
    await writeImages(`${tmp}/test_images.npy`, set.test.images, opts.imageSize, opts.imageResize);
    const stored = opts.keepStored ? [STORED_IMAGE_FILES.train, STORED_IMAGE_FILES.test] : [];
    if (opts.keepStored) {
      await writeImages(`${tmp}/${STORED_IMAGE_FILES.train}`, set.train.images, undefined);
      await writeImages(`${tmp}/${STORED_IMAGE_FILES.test}`, set.test.images, undefined);
    }
    await writeFile(`${tmp}/${STIMULI_FILE}`, JSON.stringify(stimuliOf(set)) + '\n');
    const meta: ImagesMeta = {
      formatVersion: 1,
      dataset: set.dataset,
      subject: opts.subject ?? null,
      split: { train: set.train.images.count, test: set.test.images.count },
      image: imageMeta(set.train.images, opts.imageSize, opts.imageResize),
      files: ['train_images.npy', 'test_images.npy', ...stored, STIMULI_FILE, 'meta.json'],
      sources: await sourceHashes(set.sources, opts.path),
    };
    await writeFile(`${tmp}/meta.json`, JSON.stringify(meta, null, 2) + '\n');
    return meta;
  });
}
