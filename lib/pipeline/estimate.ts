/**
 * `lea run --dry-run`'s cost table: for each compute stage of a plan, its parameter count, an approximate
 * FLOP count per step (training) or per item (inference), and the seconds one step or item takes on this
 * machine's backend, measured by building the stage's model at the config's size with random weights (values
 * do not change the time) and timing a few steps or items; times the number of steps or items the run does.
 * One estimator per stage implementation, in one table. FLOPs of transformers are the usual 2·P per token
 * forward and 6·P per token for a training step (P = parameters in matrices); convolutional nets get none.
 */
import * as tf from '@tensorflow/tfjs';
import { DEFAULT_COMPILE, type CompileMode } from '../compute/compile-modes.js';
import { Rng } from '../compute/rng.js';
import type { ReproductionConfig, Stage } from '../config/reproduction.js';
import { SYNTH_SCALES } from '../data/synth.js';
import { FmriAutoencoder } from '../models/fmri-autoencoder.js';
import type { ImageBatch } from '../models/types.js';
import { countParams } from '../models/layers.js';
import { FmriMae } from '../models/mae.js';
import { MaskGit, type MaskGitStep } from '../models/maskgit.js';
import { VisionTransformer, parseVitConfig, vitParamShapes, vitTokens } from '../models/vit.js';
import { PatchTokenizer, VqGan, imagesToTensor, type ImageTokenizer } from '../models/vq-tokenizer.js';
import { ndarray, type NdArray } from '../tensors/ndarray.js';
import { optimizerFor, type TrainSettings, type TrainTask } from '../train/loop.js';
import { TRAINABLE_STAGES } from '../train/registry.js';
import { fmriAeConfig } from '../train/stages/fmri-ae.js';
import { maeConfig } from '../train/stages/mae.js';
import { maskgitConfig } from '../train/stages/maskgit.js';
import { vqganConfig } from '../train/stages/tokenizer.js';
import { StepRunner } from '../train/step.js';
import type { WeightsRecord } from '../weights/import.js';
import type { StagePlan } from './run-record.js';

export interface StageEstimate {
  stage: string;
  queue: StagePlan['queue'];
  parameters?: number;
  /** What one unit is: a training step, or one item (image, fMRI row, test item). */
  unit?: string;
  units?: number;
  flopsPerUnit?: number;
  secondsPerUnit?: number;
  seconds?: number;
  note?: string;
}

/** The data a run will see: counts of the real datasets, or of the synthetic scale. */
export interface DataShape {
  train: number;
  test: number;
  voxels: number;
  roiSizes: number[];
  imageSize: number;
}

/** Published sizes (spec §4): GOD 1200 / 50 at 256 px; BOLD5000 CSI1-3 4803 / 113 at 375 px (CSI4 has fewer). */
const DATASETS = {
  god: { train: 1200, test: 50, image: 256 },
  bold5000: { train: 4803, test: 113, image: 375 },
};

export function dataShape(cfg: ReproductionConfig): DataShape | undefined {
  const src = cfg.data.source;
  const roiSizes = cfg.data.roiPatch ? [...cfg.data.roiPatch] : undefined;
  if (!roiSizes) return undefined;
  const voxels = roiSizes.reduce((a, b) => a + b, 0);
  if (src.kind === 'synthetic') {
    const s = SYNTH_SCALES[src.scale];
    const [train, test] =
      cfg.data.dataset === 'god'
        ? [
            s.god.trainPerClass * (s.shapes * s.palettes - s.god.testCombos),
            s.god.testCombos * s.god.testPerClass,
          ]
        : [s.bold.trainImages, s.bold.testImages];
    return { train, test, voxels, roiSizes, imageSize: cfg.data.imageSize ?? s.imageSize };
  }
  const d = DATASETS[cfg.data.dataset];
  return { train: d.train, test: d.test, voxels, roiSizes, imageSize: cfg.data.imageSize ?? d.image };
}

interface EstimateContext {
  cfg: ReproductionConfig;
  data: DataShape;
  /** Imported weights by the stage input that reads them. */
  weights: Record<string, WeightsRecord>;
  reps: number;
}

type Estimate = Omit<StageEstimate, 'stage' | 'queue'>;
type Estimator = (plan: StagePlan, ctx: EstimateContext) => Promise<Estimate>;

/** Median seconds of `reps` calls after one warm-up call; one call after it when a call takes seconds. */
async function timed(fn: () => Promise<void> | void, reps: number): Promise<number> {
  const t0 = performance.now();
  await fn();
  const slow = performance.now() - t0 > 2000;
  const times: number[] = [];
  for (let i = 0; i < (slow ? 1 : reps); i++) {
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1]!;
}

/** Parameters in matrices (the ones a token's FLOPs scale with). */
function matrixParams(params: Map<string, tf.Variable>): number {
  let n = 0;
  for (const v of params.values()) if (v.shape.length >= 2) n += v.size;
  return n;
}

function randomImages(count: number, size: number): ImageBatch {
  const rng = new Rng(0, 'estimate/images');
  const data = new Uint8Array(count * size * size * 3);
  for (let i = 0; i < data.length; i++) data[i] = rng.integer(0, 256);
  return { data, count, height: size, width: size };
}

/** Seconds of one training step: loss, gradients of every parameter (the optimizer update is small beside it). */
/**
 * One training step of `task` as the loop runs it (draw, loss, backward, clipping, AdamW; lib/train/step.ts) in
 * the config's compile mode: median seconds after the first call, which traces and compiles and is reported
 * apart, and the same step eagerly beside it when the mode compiles.
 */
async function stepSeconds(
  task: TrainTask,
  settings: TrainSettings,
  ctx: EstimateContext,
): Promise<Pick<Estimate, 'secondsPerUnit' | 'note'>> {
  const batch = Int32Array.from({ length: settings.batchSize }, (_, i) => i % task.examples);
  const rng = new Rng(0, 'estimate/draws');
  const time = async (mode: CompileMode): Promise<{ seconds: number; first: number; ran: CompileMode }> => {
    const opt = optimizerFor(task.params, settings);
    try {
      const runner = new StepRunner(task, opt, mode);
      const probe = () => ({ inputs: task.draw(batch, rng), lr: settings.lr });
      const step = () => void runner.run(task.draw(batch, rng), settings.lr, probe);
      const t0 = performance.now();
      step();
      const first = (performance.now() - t0) / 1000;
      return { seconds: await timed(step, ctx.reps), first, ran: runner.mode };
    } finally {
      opt.dispose();
    }
  };
  const main = await time(ctx.cfg.runtime?.compile ?? DEFAULT_COMPILE);
  if (main.ran === 'eager') return { secondsPerUnit: main.seconds };
  const eager = await time('eager');
  return {
    secondsPerUnit: main.seconds,
    note: `${main.ran} steps (first call ${main.first.toFixed(1)} s); eager ${eager.seconds.toFixed(2)} s/step`,
  };
}

/** The loop settings of a trainable stage the plan runs (lib/train/registry.ts): the plan has it, so it has them. */
function loopSettings(plan: StagePlan, ctx: EstimateContext): TrainSettings {
  return TRAINABLE_STAGES[plan.impl as Stage].settings(ctx.cfg)!;
}

function tokenizerFor(ctx: EstimateContext): ImageTokenizer {
  const t = ctx.cfg.models.tokenizer;
  if (t.kind === 'vqgan') return new VqGan(vqganConfig(ctx.cfg), new Rng(0, 'estimate'));
  return new PatchTokenizer(t.patchSize, new Float32Array(t.codes * t.patchSize * t.patchSize * 3));
}

function maskgitFor(ctx: EstimateContext, tokenizer: ImageTokenizer): MaskGit {
  const size = ctx.data.imageSize;
  return new MaskGit(
    maskgitConfig(ctx.cfg, tokenizer, { height: size, width: size }),
    new Rng(0, 'estimate'),
  );
}

/** The CLIP image tower at the imported architecture, random weights; undefined for the random-ReLU map. */
function clipFor(ctx: EstimateContext): VisionTransformer | undefined {
  const rec = ctx.weights.clip;
  if (!rec) return undefined;
  const cfg = parseVitConfig(rec.config, rec.name);
  const rng = new Rng(0, 'estimate/clip');
  const tensors = new Map<string, NdArray>();
  for (const [name, shape] of vitParamShapes(cfg)) {
    const size = shape.reduce((a, b) => a * b, 1);
    tensors.set(name, ndarray('float32', shape, rng.fillNormal(new Float32Array(size), 0, 0.02)));
  }
  return new VisionTransformer(cfg, tensors, rec.name);
}

const fmriTraining: Estimator = async (plan, ctx) => {
  const t = loopSettings(plan, ctx);
  const rng = new Rng(0, 'estimate');
  const model =
    plan.impl === 'mae'
      ? new FmriMae(maeConfig(ctx.cfg), rng, ctx.cfg.data.patchPadding)
      : new FmriAutoencoder(fmriAeConfig(ctx.cfg, ctx.data.roiSizes), rng);
  try {
    const k = ctx.data.voxels;
    const rows = rng.fillNormal(new Float32Array(t.batchSize * k), 0, 1);
    const base = { stage: plan.impl, params: model.params, examples: t.batchSize, model: {} };
    const task: TrainTask =
      model instanceof FmriMae
        ? ({
            ...base,
            draw: (b, r) => model.drawStep(rows, b.length, k, r),
            loss: (i) => model.stepLoss(i),
          } satisfies TrainTask<ReturnType<FmriMae['drawStep']>>)
        : {
            ...base,
            draw: (b) => ({ x: tf.tensor2d(rows, [b.length, k]) }),
            loss: ({ x }: { x: tf.Tensor2D }) => model.loss(x, x),
          };
    const { secondsPerUnit = NaN, note } = await stepSeconds(task, t, ctx);
    const tokens =
      model instanceof FmriMae
        ? model.kept(ctx.data.voxels) + 1
        : ctx.data.roiSizes.length * ctx.cfg.models.fmriAe.tokensPerRoi + 1;
    return {
      parameters: countParams(model.params),
      unit: `step (batch ${t.batchSize})`,
      units: t.iterations,
      flopsPerUnit: 6 * matrixParams(model.params) * tokens * t.batchSize,
      secondsPerUnit,
      seconds: secondsPerUnit * t.iterations,
      ...(note ? { note } : {}),
    };
  } finally {
    model.dispose();
  }
};

const ESTIMATORS: Record<string, Estimator> = {
  mae: fmriTraining,
  'fmri-ae': fmriTraining,

  async features(_plan, ctx) {
    const images = ctx.data.train + ctx.data.test;
    const vit = clipFor(ctx);
    if (!vit) return { unit: 'image', units: images, note: 'random-ReLU map: negligible' };
    try {
      const batch = randomImages(2, ctx.data.imageSize);
      const secondsPerUnit = (await timed(() => vit.run(batch).then(() => undefined), ctx.reps)) / 2;
      const rec = ctx.weights.clip!;
      const cfg = parseVitConfig(rec.config, rec.name);
      return {
        parameters: rec.parameters,
        unit: 'image',
        units: images,
        flopsPerUnit: 2 * 12 * cfg.width * cfg.width * cfg.layers * vitTokens(cfg),
        secondsPerUnit,
        seconds: secondsPerUnit * images,
      };
    } finally {
      vit.dispose();
    }
  },

  async tokenizer(plan, ctx) {
    const t = ctx.cfg.models.tokenizer;
    if (t.kind === 'vqgan' && t.frozen) return { note: 'frozen: the imported VQGAN is stored as is' };
    if (t.kind === 'patch-kmeans') return { note: 'k-means on patches: seconds' };
    const s = loopSettings(plan, ctx);
    const vq = new VqGan(vqganConfig(ctx.cfg), new Rng(0, 'estimate'));
    try {
      const images = randomImages(s.batchSize, ctx.data.imageSize);
      const task: TrainTask<{ x: tf.Tensor4D }> = {
        stage: plan.impl,
        params: vq.params,
        examples: s.batchSize,
        model: {},
        draw: () => ({ x: imagesToTensor(images) }),
        loss: ({ x }) => vq.losses(x).total,
      };
      const { secondsPerUnit = NaN, note } = await stepSeconds(task, s, ctx);
      return {
        parameters: countParams(vq.params),
        unit: `step (batch ${s.batchSize})`,
        units: s.iterations,
        secondsPerUnit,
        seconds: secondsPerUnit * s.iterations,
        ...(note ? { note } : {}),
      };
    } finally {
      vq.dispose();
    }
  },

  async maskgit(plan, ctx) {
    const t = loopSettings(plan, ctx);
    const tokenizer = tokenizerFor(ctx);
    const vit = clipFor(ctx);
    const model = maskgitFor(ctx, tokenizer);
    try {
      const views = (ctx.cfg.training.maskgit.flip ? 2 : 1) * ctx.data.train;
      const one = randomImages(1, ctx.data.imageSize);
      const prep =
        (await timed(() => void tokenizer.encode(one), ctx.reps)) +
        (vit ? await timed(() => vit.run(one).then(() => undefined), ctx.reps) : 0);
      const { length, featureDim, codes } = model.cfg;
      const rng = new Rng(0, 'estimate');
      const tokens = Int32Array.from({ length: t.batchSize * length }, () => rng.integer(0, codes));
      const features = rng.fillNormal(new Float32Array(t.batchSize * featureDim), 0, 1);
      const task: TrainTask<MaskGitStep> = {
        stage: plan.impl,
        params: model.params,
        examples: t.batchSize,
        model: {},
        draw: (b, r) => model.drawStep(tokens, features, b.length, r),
        loss: (i) => model.stepLoss(i),
      };
      const { secondsPerUnit = NaN, note: compiled } = await stepSeconds(task, t, ctx);
      return {
        parameters: countParams(model.params),
        unit: `step (batch ${t.batchSize})`,
        units: t.iterations,
        flopsPerUnit: 6 * matrixParams(model.params) * (length + 1) * t.batchSize,
        secondsPerUnit,
        seconds: secondsPerUnit * t.iterations + prep * views,
        note:
          `plus tokens${vit ? ' and CLIP features' : ''} of ${views} training images first (${(prep * views).toFixed(0)} s)` +
          (compiled ? `; ${compiled}` : ''),
      };
    } finally {
      model.dispose();
      vit?.dispose();
      tokenizer.dispose();
    }
  },

  async latents(_plan, ctx) {
    const ae = new FmriAutoencoder(fmriAeConfig(ctx.cfg, ctx.data.roiSizes), new Rng(0, 'estimate'));
    try {
      const rows = 8;
      const x = tf.randomNormal([rows, ctx.data.voxels]) as tf.Tensor2D;
      const secondsPerUnit = (await timed(() => void ae.encode(x).dispose(), ctx.reps)) / rows;
      x.dispose();
      const units = ctx.data.train + ctx.data.test;
      return { unit: 'fMRI row', units, secondsPerUnit, seconds: secondsPerUnit * units };
    } finally {
      ae.dispose();
    }
  },

  async decode(_plan, ctx) {
    const { steps, samples } = ctx.cfg.decoding;
    const tokenizer = tokenizerFor(ctx);
    const model = maskgitFor(ctx, tokenizer);
    try {
      const { length, featureDim } = model.cfg;
      const ids = new Int32Array(samples * length).fill(model.maskId);
      const features = new Float32Array(samples * featureDim);
      const size = ctx.data.imageSize;
      const secondsPerUnit = await timed(() => {
        for (let s = 0; s < steps; s++) model.logits(ids, features, samples);
        tokenizer.decode(new Int32Array(samples * length), samples, size, size);
      }, ctx.reps);
      return {
        unit: `test item (${samples} samples x ${steps} steps)`,
        units: ctx.data.test,
        flopsPerUnit: 2 * matrixParams(model.params) * (length + 1) * samples * steps,
        secondsPerUnit,
        seconds: secondsPerUnit * ctx.data.test,
      };
    } finally {
      model.dispose();
      tokenizer.dispose();
    }
  },
};

/** Estimates every stage of the plan that has an estimator; the others (data, ridge, encode, metrics) get none. */
export async function estimatePlan(
  plan: StagePlan[],
  cfg: ReproductionConfig,
  data: DataShape,
  weights: Record<string, WeightsRecord>,
  log: (line: string) => void = () => {},
  reps = 2,
): Promise<StageEstimate[]> {
  const out: StageEstimate[] = [];
  for (const p of plan) {
    const estimator = ESTIMATORS[p.impl];
    if (estimator) log(`measuring ${p.name}`);
    const base = { stage: p.name, queue: p.queue };
    out.push(estimator ? { ...base, ...(await estimator(p, { cfg, data, weights, reps })) } : base);
  }
  return out;
}
