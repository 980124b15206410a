/**
 * The values of each upstream choice (lib/config/upstream-choices.ts has the table of choices). Types only from
 * below: the config schema, lib/data, lib/models and the CLI read these lists without reading the config.
 */
import type { ResizeFilter } from '../images/resize.js';
import type { InceptionResize } from '../models/inception-v3.js';
import type { MaskGitNumerics } from '../models/maskgit-numerics.js';

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

/**
 * MaskGIT's GroupNorm and embedding LayerNorm epsilons and GELU form (lib/models/maskgit-numerics.ts has the
 * values). lea-port: LEA's PyTorch port, what produced the paper's numbers; maskgit-flax: MaskGIT's Flax code.
 */
export const MASKGIT_NUMERICS = ['lea-port', 'maskgit-flax'] as const satisfies readonly MaskGitNumerics[];
