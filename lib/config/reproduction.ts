/**
 * The `pipeline: reproduction` config: one subject of one dataset through every LEA stage (spec §1), with
 * the model sizes and training settings of each stage, decoding and ridge settings. configs/paper/ holds the
 * paper's and the authors' values, configs/smoke.yaml the miniature of spec §7. Strict: unknown keys are errors.
 */
import { z } from 'zod';
import { COMPILE_MODES } from '../compute/compile-modes.js';
import {
  CLIP_INPUTS,
  FID_RESIZES,
  IMAGE_RESIZES,
  MASKGIT_NUMERICS,
  PATCH_PADDINGS,
  TEST_NORMALISATIONS,
} from './choice-values.js';
import { sweepSection } from './sweep.js';

const posInt = z.number().int().min(1);
/** The name of imported weights (`lea weights import --name`): the artifact `weights/<name>`. */
const weightsName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a weights name: letters, digits and ._-');
const name = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'must be 1-64 lower-case letters, digits, ".", "_" or "-"');

export const STAGES = ['mae', 'fmri-ae', 'tokenizer', 'maskgit'] as const;
export type Stage = (typeof STAGES)[number];

const source = z.discriminatedUnion('kind', [
  /** The synthetic world of lib/data/synth.ts, generated on the fly. */
  z.strictObject({
    kind: z.literal('synthetic'),
    scale: z.enum(['tiny', 'small', 'paper']),
    seed: z.number().int().min(0),
    /** Subjects in the world (sbj_1..N or CSI1..N); a suite over subjects needs them all in one world. */
    subjects: z.number().int().min(1).max(5).default(1),
  }),
  /** A dataset folder in the MinD-Vis layout on local disk. */
  z.strictObject({ kind: z.literal('local'), path: z.string().min(1) }),
  /** A dataset manifest (configs/datasets/*.yaml) fetched into the artifact store by `lea data fetch`. */
  z.strictObject({ kind: z.literal('fetch'), manifest: z.string().min(1), baseUrl: z.string().optional() }),
]);

const data = z
  .strictObject({
    dataset: z.enum(['god', 'bold5000']),
    subject: z.string().regex(/^(sbj_[0-9]+|CSI[0-9]+)$/, 'must be sbj_N (GOD) or CSIn (BOLD5000)'),
    source,
    /**
     * ROI group sizes (the authors' roi_patch), checked by prepare against the masks. Absent: the dataset's
     * roi_patch.json, else the paper's table, else the sizes the masks give; meta.json's roiPatchSource says which.
     */
    roiPatch: z.array(posInt).min(1).optional(),
    /** Images are resized to imageSize x imageSize when prepared (LEA: 256, the VQGAN's input). */
    imageSize: posInt.optional(),
    /**
     * The PIL filter of that resize (lib/config/choice-values.ts). bilinear: LEA's src/dataset.py; bicubic:
     * open_clip's evaluation filter.
     */
    imageResize: z.enum(IMAGE_RESIZES).default('bilinear'),
    /**
     * What imported CLIP reads when images are resized (lib/config/choice-values.ts). stored: the stored
     * image (LEA's src/dataset.py); resized: the resized one.
     */
    clipInput: z.enum(CLIP_INPUTS).default('stored'),
    /**
     * What the image side (tokenizer, MaskGIT, image features) trains on. per-dataset: every image of the
     * dataset, the same artifacts for all its subjects, so a suite of five GOD subjects trains one MaskGIT
     * (the paper's checkpoint_GOD.pth). per-subject: only the stimuli this subject saw (for BOLD5000's CSI4, a
     * subset).
     */
    imageSide: z.enum(['per-dataset', 'per-subject']).default('per-dataset'),
    /**
     * GOD only (BOLD5000 z-scores all its trials with one mean and std): how the test fMRI is normalised
     * (lib/config/choice-values.ts). upstream: LEA's code, the test rows left in raw units; train-stats: the
     * raw training mean and std.
     */
    testNormalisation: z.enum(TEST_NORMALISATIONS).default('upstream'),
    /**
     * How the MAE (stage 0 trained here) pads a row to whole patches. mindvis: MinD-Vis's pad_to_patch_size, a
     * whole extra patch when the voxel count divides by the patch size; minimal: none then.
     */
    patchPadding: z.enum(PATCH_PADDINGS).default('mindvis'),
  })
  .refine((d) => (d.dataset === 'god') === d.subject.startsWith('sbj_'), {
    message: 'subject must be sbj_N for god and CSIn for bold5000',
    path: ['subject'],
  });

const transformerFields = {
  width: posInt,
  depth: posInt,
  heads: posInt,
  mlpRatio: z.number().positive(),
  decoderWidth: posInt,
  decoderDepth: posInt,
  decoderHeads: posInt,
  eps: z.number().positive().default(1e-5),
};

/** Sin-cos positions need an even width, attention a width that divides by the heads. */
function checkHeads(
  m: { width: number; heads: number; decoderWidth: number; decoderHeads: number },
  ctx: z.RefinementCtx,
): void {
  for (const [w, h, what] of [
    [m.width, m.heads, 'width'],
    [m.decoderWidth, m.decoderHeads, 'decoderWidth'],
  ] as const) {
    if (w % h !== 0 || w % 2 !== 0)
      ctx.addIssue({ code: 'custom', message: `${what} ${w} must be even and divide by its heads (${h})` });
  }
}

const mae = z
  .strictObject({ patchSize: posInt, maskRatio: z.number().gt(0).lt(1), ...transformerFields })
  .superRefine(checkHeads);

const fmriAe = z
  .strictObject({
    /** Tokens per ROI (the authors' Data.patch_size). */
    tokensPerRoi: posInt,
    latent: posInt,
    /** Voxel dropout of the input (fmri_drop_rate). */
    voxelDropRate: z.number().min(0).lt(1),
    ...transformerFields,
  })
  .superRefine(checkHeads);

const imageFeatures = z.discriminatedUnion('kind', [
  /** open_clip's image tower, imported with `lea weights import --kind openclip-vit-h14 --name <weights>`. */
  z.strictObject({ kind: z.literal('clip'), weights: weightsName, dim: posInt }),
  z.strictObject({ kind: z.literal('random-relu'), dim: posInt, hidden: posInt }),
]);

const tokenizer = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('vqgan'),
    chBase: posInt,
    chMult: z.array(posInt).min(1),
    numResBlocks: posInt,
    numResMids: z.number().int().min(0),
    chLatent: posInt,
    codes: posInt,
    groups: posInt,
    beta: z.number().min(0),
    /** Frozen pretrained weights (the paper) rather than trained here. */
    frozen: z.boolean(),
    /** The frozen weights: MaskGIT's ImageNet tokenizer, imported as --kind maskgit-tokenizer. */
    weights: weightsName.optional(),
    /** GroupNorm epsilon: LEA's port or MaskGIT's Flax (lib/models/maskgit-numerics.ts); imported weights agree. */
    numerics: z.enum(MASKGIT_NUMERICS).default('lea-port'),
  }),
  z.strictObject({ kind: z.literal('patch-kmeans'), patchSize: posInt, codes: posInt, iterations: posInt }),
]);

const maskgit = z
  .strictObject({
    /** ImageNet class slots between the codes and the mask id (1000 in the paper; the miniature has none). */
    classSlots: z.number().int().min(0),
    width: posInt,
    depth: posInt,
    heads: posInt,
    mlpHidden: posInt,
    dropout: z.number().min(0).lt(1),
    minMaskRate: z.number().min(0).max(1),
    labelSmoothing: z.number().min(0).lt(1),
    /** Start from MaskGIT's ImageNet transformer (--kind maskgit-transformer): every tensor but decoder_embed. */
    initFrom: weightsName.optional(),
    /** Embedding LayerNorm epsilon and GELU form, as for the tokenizer; imported weights agree. */
    numerics: z.enum(MASKGIT_NUMERICS).default('lea-port'),
  })
  .refine((m) => m.width % m.heads === 0, { message: 'width must divide by heads', path: ['width'] });

const trainSettings = {
  lr: z.number().positive(),
  batchSize: posInt,
  iterations: posInt,
  warmup: z.number().int().min(0),
  schedule: z.enum(['linear', 'cosine']).default('linear'),
  /** Global gradient-norm clip; 0 = none. */
  clip: z.number().min(0),
  weightDecay: z.number().min(0).default(0.01),
  betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.95]),
  eps: z.number().positive().default(1e-8),
  decayParams: z.enum(['all', 'matrices']).default('all'),
  checkpointEvery: posInt,
};
const warmupBelow = (t: { warmup: number; iterations: number }) => t.warmup < t.iterations;
const warmupMessage = { message: 'warmup must be below iterations', path: ['warmup'] };

const training = z.strictObject({
  /**
   * Stage 0: trained here on the subject's fMRI, or `{initFrom: <weights>}`, MinD-Vis's pretrained MAE
   * (--kind mindvis-mae), in which case stage 0 is skipped. Absent: the autoencoder starts fresh.
   */
  mae: z
    .union([
      z.strictObject(trainSettings).refine(warmupBelow, warmupMessage),
      z.strictObject({ initFrom: weightsName }),
    ])
    .optional(),
  fmriAe: z
    .strictObject({
      ...trainSettings,
      /** Start from the stage-0 weights (by name and shape) or from scratch. */
      initFrom: z.enum(['mae', 'none']),
      /** Train on train + test fMRI as LEA does (spec §1), or on training fMRI only (leakage-free). */
      includeTestFmri: z.boolean().default(true),
    })
    .refine(warmupBelow, warmupMessage),
  /** Only for a trainable (not frozen) VQGAN. */
  tokenizer: z.strictObject(trainSettings).refine(warmupBelow, warmupMessage).optional(),
  maskgit: z.strictObject({ ...trainSettings, flip: z.boolean() }).refine(warmupBelow, warmupMessage),
});

export const reproductionConfig = z
  .strictObject({
    name,
    description: z.string().optional(),
    pipeline: z.literal('reproduction'),
    seed: z.number().int().min(0).default(0),
    /**
     * A seed suite: the config runs once per seed, as one suite (`lea run CONFIG --seeds N` gives seed, seed+1,
     * ...). Each run is named NAME-seedS; what a seed reaches is seedScope's (lib/pipeline/suite.ts seedMembers).
     */
    seeds: z
      .array(z.number().int().min(0))
      .min(1)
      .refine((s) => new Set(s).size === s.length, 'seeds must differ')
      .optional(),
    seedScope: z.enum(['training', 'sampling']).default('training'),
    /** Decoding's MaskGIT draws, the n-way distractors and the bootstrap (absent: seed); set by a sampling suite. */
    samplingSeed: z.number().int().min(0).optional(),
    /** A sweep over config fields, started by `lea sweep` (lib/config/sweep.ts); `lea run` refuses such a config. */
    sweep: sweepSection.optional(),
    data,
    models: z.strictObject({ mae, fmriAe, imageFeatures, tokenizer, maskgit }),
    training,
    decoding: z.strictObject({
      steps: posInt.default(11),
      samples: posInt.default(5),
      choiceTemperature: z.number().min(0).default(4.5),
    }),
    alignment: z.strictObject({
      ridgeAlpha: z.number().min(0),
      /** When present, α is chosen from these by k-fold CV on the training pairs (spec §7) and ridgeAlpha is the ablation. */
      cvAlphas: z.array(z.number().min(0)).min(1).optional(),
      cvFolds: z.number().int().min(2).default(5),
    }),
    /**
     * The paper's metric networks (spec §5), imported weights by name; each absent one leaves its metric
     * uncomputed (the miniature's stand-ins, under names of their own, are computed regardless).
     */
    metrics: z
      .strictObject({
        /** torchvision ViT-H/14 (--kind torchvision-vit-h14): decode.nway50 */
        classifier: weightsName.optional(),
        /** open_clip ViT-H/14 (--kind openclip-vit-h14): decode.clip_twoway */
        clip: weightsName.optional(),
        /** torchvision AlexNet and lpips' heads (--kind torchvision-alexnet, lpips-alex-v0.1): decode.twoway_psm */
        lpips: z.strictObject({ backbone: weightsName, heads: weightsName }).optional(),
        /** torch-fidelity InceptionV3 (--kind fid-inception-v3): decode.fid */
        inception: weightsName.optional(),
        /** decode.fid's resize to 299 px: tf1 (the torchmetrics 0.11.4 LEA pins) or antialias (its later default). */
        fidResize: z.enum(FID_RESIZES).default('tf1'),
        /** The bootstrap over test items that gives each item-mean metric its interval (lib/metrics/intervals.ts). */
        intervals: z
          .strictObject({
            method: z.enum(['percentile', 'bca']).default('percentile'),
            resamples: z.number().int().min(100).max(1_000_000).default(2000),
            level: z.number().gt(0).lt(1).default(0.95),
          })
          .prefault({}),
      })
      .prefault({}),
    /** Temporal settings of the run's activities (defaults in lib/pipeline/plan.ts). */
    runtime: z
      .strictObject({
        heartbeatSeconds: posInt,
        trainingTimeoutHours: z.number().positive(),
        stageTimeoutHours: z.number().positive(),
        maxAttempts: posInt,
        /** How long a stage waits for S3 to answer again before its attempt fails (default 30). */
        dependencyWaitMinutes: z.number().positive(),
        /**
         * How training steps run on the native backends (lib/train/step.ts; default graph): one TensorFlow
         * function per step, XLA-compiled ('xla': fused kernels, other float rounding, a compile per stage) or not
         * ('graph': the eager kernels, bit-identical to 'eager'), or op by op ('eager'; always so on wasm and cpu).
         */
        compile: z.enum(COMPILE_MODES),
      })
      .partial()
      .optional(),
  })
  .superRefine((c, ctx) => {
    const t = c.models.tokenizer;
    if (t.kind === 'vqgan' && !t.frozen && !c.training.tokenizer) {
      ctx.addIssue({
        code: 'custom',
        path: ['training', 'tokenizer'],
        message: 'a VQGAN that is not frozen needs training.tokenizer',
      });
    }
    if (c.training.tokenizer && (t.kind !== 'vqgan' || t.frozen)) {
      ctx.addIssue({
        code: 'custom',
        path: ['training', 'tokenizer'],
        message: 'only a VQGAN that is not frozen is trained with training.tokenizer',
      });
    }
    if (t.kind === 'vqgan' && t.frozen && !t.weights) {
      ctx.addIssue({
        code: 'custom',
        path: ['models', 'tokenizer', 'weights'],
        message:
          'a frozen VQGAN needs its imported weights (lea weights import --kind maskgit-tokenizer --name NAME)',
      });
    }
    if (c.training.fmriAe.initFrom === 'mae' && c.training.mae && !('initFrom' in c.training.mae)) {
      const a = c.models.mae;
      const b = c.models.fmriAe;
      if (a.width !== b.width || a.depth !== b.depth || a.mlpRatio !== b.mlpRatio) {
        ctx.addIssue({
          code: 'custom',
          path: ['training', 'fmriAe', 'initFrom'],
          message: `initFrom mae needs the MAE and autoencoder encoders to match (width ${a.width}/${b.width}, depth ${a.depth}/${b.depth}, mlpRatio ${a.mlpRatio}/${b.mlpRatio})`,
        });
      }
    }
  });

export type ReproductionConfig = z.output<typeof reproductionConfig>;
