/**
 * The numerical choices where this pipeline and the authors' code (naiq/LEA, MinD-Vis, the metric libraries LEA
 * pins) can compute the same step differently (issue 31). Each is a config option; the paper configs name the
 * value the authors' code takes, so their numbers are reproduced, and the run record states every value
 * (`choices`), so a result says how it was computed. Dependency-free: the config schema, the plan and the CLI
 * read the value lists, lib/data and lib/metrics implement them.
 */
import type { ResizeFilter } from '../images/resize.js';
import type { InceptionResize } from '../models/inception-v3.js';
import type { ReproductionConfig } from './reproduction.js';

/**
 * GOD's averaged test fMRI (lib/data/god.ts). upstream: LEA's and MinD-Vis's create_Kamitani_*dataset divide the
 * test matrix by the mean and std of the already z-scored training matrix (about 0 and 1), so it stays in raw
 * units. train-stats: the test matrix z-scored with the raw training mean and std (the textbook rule).
 */
export const TEST_NORMALISATIONS = ['upstream', 'train-stats'] as const;
export type TestNormalisation = (typeof TEST_NORMALISATIONS)[number];

/**
 * The voxel padding before the MAE cuts a row into patches (lib/models/mae.ts). mindvis: MinD-Vis's
 * pad_to_patch_size, np.pad(x, patch_size − K % patch_size, 'wrap'), a whole extra patch when K divides by it.
 * minimal: only up to the next multiple.
 */
export const PATCH_PADDINGS = ['mindvis', 'minimal'] as const;
export type PatchPadding = (typeof PATCH_PADDINGS)[number];

/**
 * FID's resize of uint8 images to Inception's 299 px (lib/models/inception-v3.ts). tf1: torch-fidelity 0.3.0's
 * TF1-style bilinear without antialiasing, what the torchmetrics 0.11.4 that LEA pins computes; antialias:
 * bilinear with antialias=True, torchmetrics' later default.
 */
export const FID_RESIZES = ['tf1', 'antialias'] as const satisfies readonly InceptionResize[];
export type FidResize = (typeof FID_RESIZES)[number];

/**
 * The PIL filter that resizes the stored images to data.imageSize (lib/images/resize.ts), for the VQGAN, CLIP and
 * the metrics' ground truth. bilinear: LEA's src/dataset.py, torchvision Resize((256, 256)) on PIL images;
 * bicubic: open_clip's and torchvision's evaluation filter, ours before issue 31.
 */
export const IMAGE_RESIZES = ['bilinear', 'bicubic'] as const satisfies readonly ResizeFilter[];
export type ImageResize = (typeof IMAGE_RESIZES)[number];

/**
 * What the imported CLIP tower reads when the images are resized (data.imageSize). stored: the stored image, as
 * LEA's src/dataset.py gives CLIP its own preprocessing of the unresized stimulus; resized: the resized image.
 */
export const CLIP_INPUTS = ['stored', 'resized'] as const;
export type ClipInput = (typeof CLIP_INPUTS)[number];

export interface UpstreamChoice {
  /** The config field. */
  field: string;
  /** The value the authors' code takes. */
  upstream: string;
  /** The plan stages whose config (so cache key) it enters: the stages that compute with it. */
  stages: readonly string[];
  /** The config's value; undefined where the choice does not apply (e.g. a GOD-only rule on BOLD5000). */
  read(cfg: ReproductionConfig): string | undefined;
}

export const UPSTREAM_CHOICES: readonly UpstreamChoice[] = [
  {
    field: 'data.testNormalisation',
    upstream: 'upstream',
    stages: ['prepare'],
    read: (c) => (c.data.dataset === 'god' ? c.data.testNormalisation : undefined),
  },
  {
    field: 'data.imageResize',
    upstream: 'bilinear',
    // the prepared ground truth and the image side's images are resized alike
    stages: ['prepare', 'images'],
    read: (c) => (c.data.imageSize === undefined ? undefined : c.data.imageResize),
  },
  {
    field: 'data.clipInput',
    upstream: 'stored',
    // the images stage keeps the stored images beside the resized ones; image-features reads them
    stages: ['images', 'image-features'],
    read: (c) =>
      c.data.imageSize !== undefined && c.models.imageFeatures.kind === 'clip' ? c.data.clipInput : undefined,
  },
  {
    field: 'data.patchPadding',
    upstream: 'mindvis',
    stages: ['mae'],
    // only a stage 0 trained here cuts patches (imported MAE weights skip it)
    read: (c) => (c.training.mae && !('initFrom' in c.training.mae) ? c.data.patchPadding : undefined),
  },
  {
    field: 'metrics.fidResize',
    upstream: 'tf1',
    stages: ['metrics'],
    read: (c) => (c.metrics.inception ? c.metrics.fidResize : undefined),
  },
];

/** The run record's `choices`: each choice that applies to the config, field → value. */
export function upstreamChoices(cfg: ReproductionConfig): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of UPSTREAM_CHOICES) {
    const value = c.read(cfg);
    if (value !== undefined) out[c.field] = value;
  }
  return out;
}
