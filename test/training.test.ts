/**
 * lib/train: the schedule, the data order, and the smoke config's stages trained on the tiny synthetic world
 * (each loss must fall well below a baseline computed from the data, and no step may leak tensors).
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { initCompute } from '../lib/compute/backend.js';
import { Rng } from '../lib/compute/rng.js';
import { loadExperimentConfig } from '../lib/config/experiment.js';
import { reproductionConfig, type ReproductionConfig, type Stage } from '../lib/config/reproduction.js';
import { prepareDataset } from '../lib/data/prepare.js';
import { synthesize } from '../lib/data/synth.js';
import { flipHorizontal, type ImageBatch } from '../lib/models/image-features.js';
import { extractPatches } from '../lib/models/vq-tokenizer.js';
import { DataOrder, learningRate, type TrainSettings } from '../lib/train/loop.js';
import {
  fmriRows,
  loadPrepared,
  loadTrainImages,
  loadTokenizer,
  runStage,
  type PreparedData,
  type StageResult,
} from '../lib/train/stages.js';
import { repoRoot } from './helpers/lea.js';

let work: string;
let dataDir: string;
let smoke: ReproductionConfig;
let data: PreparedData;
let trainImages: ImageBatch;

before(async () => {
  await initCompute();
  work = mkdtempSync(join(tmpdir(), 'lea-training-'));
  const cfg = loadExperimentConfig(join(repoRoot, 'configs/smoke.yaml'));
  assert.equal(cfg.pipeline, 'reproduction');
  smoke = cfg as ReproductionConfig;
  const src = smoke.data.source;
  assert.equal(src.kind, 'synthetic');
  await synthesize({
    format: 'god',
    scale: 'tiny',
    seed: src.kind === 'synthetic' ? src.seed : 0,
    out: join(work, 'raw'),
  });
  dataDir = join(work, 'prepared');
  await prepareDataset({ dataset: 'god', path: join(work, 'raw'), subject: 'sbj_1', out: dataDir });
  data = await loadPrepared(dataDir, smoke);
  trainImages = await loadTrainImages(dataDir);
});

after(() => rmSync(work, { recursive: true, force: true }));

const settings: TrainSettings = {
  lr: 1,
  batchSize: 4,
  iterations: 10,
  warmup: 4,
  schedule: 'linear',
  clip: 0,
  weightDecay: 0,
  betas: [0.9, 0.95],
  eps: 1e-8,
  decayParams: 'all',
  checkpointEvery: 5,
};

test('learning rate: linear warmup to the peak, then linear or cosine decay to a small positive rate', () => {
  assert.deepEqual(
    [1, 2, 3, 4].map((s) => learningRate(settings, s)),
    [0.25, 0.5, 0.75, 1],
  );
  const linear = [5, 6, 7, 8, 9, 10].map((s) => learningRate(settings, s));
  linear.forEach((lr, i) => assert.ok(Math.abs(lr - (1 - i / 6)) < 1e-12));
  const cosine = [5, 10].map((s) => learningRate({ ...settings, schedule: 'cosine' }, s));
  assert.equal(cosine[0], 1);
  assert.ok((cosine[1] as number) > 0 && (cosine[1] as number) < 0.1);
});

test('data order: every epoch a fresh permutation, batches run across epochs, the state restores the sequence', () => {
  const order = new DataOrder(10, new Rng(1, 'order'));
  const seen = [...order.next(4), ...order.next(4), ...order.next(4)]; // 12: one epoch and 2 of the next
  assert.deepEqual(
    [...seen.slice(0, 10)].sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  const state = order.getState();
  const rngState = order.rng.getState();
  const rest = [...order.next(7), ...order.next(5)];
  const again = new DataOrder(10, new Rng(99));
  again.rng.setState(rngState);
  again.setState(state);
  assert.deepEqual([...again.next(7), ...again.next(5)], rest);
  assert.deepEqual(
    [...seen.slice(10), ...rest.slice(0, 8)].sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
});

function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i] as number;
  return s / xs.length;
}

/** MSE of predicting each column by its mean over the rows: what a model that ignores its input achieves. */
function columnMeanMse(rows: Float32Array, width: number): number {
  const n = rows.length / width;
  let total = 0;
  for (let j = 0; j < width; j++) {
    let m = 0;
    for (let i = 0; i < n; i++) m += rows[i * width + j] as number;
    m /= n;
    for (let i = 0; i < n; i++) total += ((rows[i * width + j] as number) - m) ** 2;
  }
  return total / rows.length;
}

/** Runs a stage, checking that the live tensor count is the same at every step after the second. */
async function runFlat(
  stage: Stage,
  cfg: ReproductionConfig,
  diagnostic: (s: string) => void,
): Promise<StageResult> {
  const counts: number[] = [];
  const result = await runStage(stage, cfg, {
    dataDir,
    outDir: join(work, 'smoke'),
    onProgress: () => counts.push(tf.memory().numTensors),
  });
  const steady = counts.slice(2);
  assert.ok(
    steady.every((c) => c === steady[0]),
    `${stage}: tensor count drifts across steps: ${[...new Set(steady)].join(', ')}`,
  );
  const t = result.training;
  if (t)
    diagnostic(
      `${stage}: ${t.losses.length} steps, ${((1000 * t.seconds) / t.losses.length).toFixed(1)} ms/step, loss ${t.losses[0]?.toFixed(4)} -> ${mean(t.losses.slice(-20)).toFixed(4)} (mean of the last 20)`,
    );
  return result;
}

test('smoke config: every stage trains on the tiny world, each loss well below its baseline, no tensor leaks', async (t) => {
  // mae: a model that sees nothing scores the per-voxel variance (predicting each voxel's mean). The 4 visible
  // patches carry the shared (class, receptive-field) signal, so the masked ones must be predicted better.
  const { rows, k } = fmriRows(data, smoke);
  const voxelBaseline = columnMeanMse(rows, k);
  const mae = await runFlat('mae', smoke, (s) => t.diagnostic(s));
  const maeTail = mean(mae.training?.losses.slice(-20) ?? []);
  assert.ok(
    maeTail < voxelBaseline,
    `mae: ${maeTail} is not below the per-voxel-mean baseline ${voxelBaseline}`,
  );
  assert.ok(maeTail < 0.6 * (mae.training?.losses[0] as number));

  // fmri-ae: the same baseline is what a latent carrying no information gives. The synthetic signal is ~60% of
  // each voxel's variance (single-trial noise at 0.6x the signal), so a 32-d latent that captures the class and
  // stimulus factors removes much of it: demand 30% below the baseline.
  const ae = await runFlat('fmri-ae', smoke, (s) => t.diagnostic(s));
  assert.ok(
    ae.transfer && ae.transfer.loaded.includes('blocks.0.attn.qkv.weight'),
    'the stage-0 encoder blocks were not loaded',
  );
  const aeTail = mean(ae.training?.losses.slice(-20) ?? []);
  assert.ok(
    aeTail < 0.7 * voxelBaseline,
    `fmri-ae: ${aeTail} is not 30% below the baseline ${voxelBaseline}`,
  );

  // tokenizer (k-means): one code (the mean patch) scores the patch variance; 32 codes must do far better
  const tok = await runFlat('tokenizer', smoke, (s) => t.diagnostic(s));
  const history = tok.kmeans as number[];
  const patchVariance = columnMeanMse(extractPatches(trainImages, 4), 48);
  t.diagnostic(
    `tokenizer: k-means MSE ${history[0]?.toFixed(5)} -> ${history[history.length - 1]?.toFixed(5)}, patch variance ${patchVariance.toFixed(5)}`,
  );
  assert.ok((history[history.length - 1] as number) < 0.3 * patchVariance);
  assert.ok((history[history.length - 1] as number) < (history[0] as number));

  // maskgit: a model blind to context and condition can at best predict the codes' frequencies; its
  // label-smoothed cross-entropy is the baseline, and the visible tokens plus the features must beat it by 20%
  const tokenizer = await loadTokenizer(smoke, join(work, 'smoke'), 'test');
  const ids = [...tokenizer.encode(trainImages), ...tokenizer.encode(flipHorizontal(trainImages))];
  tokenizer.dispose();
  const freq = new Float64Array(32);
  for (const id of ids) freq[id] = (freq[id] as number) + 1 / ids.length;
  const eps = smoke.models.maskgit.labelSmoothing;
  const smoothed = Array.from(freq, (f) => (1 - eps) * f + eps / 32);
  const unigram = -smoothed.reduce((s, p) => s + p * Math.log(p), 0);
  const mg = await runFlat('maskgit', smoke, (s) => t.diagnostic(s));
  const mgTail = mean(mg.training?.losses.slice(-20) ?? []);
  t.diagnostic(`maskgit: code-frequency baseline ${unigram.toFixed(4)} nats`);
  assert.ok(
    mgTail < 0.8 * unigram,
    `maskgit: ${mgTail} is not 20% below the code-frequency baseline ${unigram}`,
  );
});

test('a miniature VQGAN tokenizer trains with reconstruction, codebook and commitment losses', async (t) => {
  const cfg = reproductionConfig.parse({
    ...smoke,
    models: {
      ...smoke.models,
      tokenizer: {
        kind: 'vqgan',
        chBase: 16,
        chMult: [1, 2, 2],
        numResBlocks: 1,
        numResMids: 1,
        chLatent: 16,
        codes: 32,
        groups: 8,
        beta: 0.25,
        frozen: false,
      },
    },
    training: {
      ...smoke.training,
      tokenizer: { lr: 2e-3, batchSize: 32, iterations: 160, warmup: 16, clip: 1, checkpointEvery: 160 },
    },
  });
  const result = await runStage('tokenizer', cfg, { dataDir, outDir: join(work, 'vqgan') });
  const losses = result.training?.losses ?? new Float32Array();
  // a decoder that ignores its codes can at best output the mean image: its error is the pixel variance
  const pixels = Float32Array.from(trainImages.data, (v) => v / 255);
  const pixelVariance = columnMeanMse(pixels, 16 * 16 * 3);
  const tail = mean(losses.slice(-10));
  t.diagnostic(
    `vqgan: ${result.parameters} parameters, ${((1000 * (result.training?.seconds ?? 0)) / losses.length).toFixed(1)} ms/step, loss ${losses[0]?.toFixed(4)} -> ${tail.toFixed(4)}, pixel variance ${pixelVariance.toFixed(4)}`,
  );
  assert.ok(
    tail < 0.75 * pixelVariance,
    `vqgan: ${tail} is not 25% below the mean-image baseline ${pixelVariance}`,
  );
  // the trained weights load back as the maskgit stage would load them
  const tokenizer = await loadTokenizer(cfg, join(work, 'vqgan'), 'test');
  assert.equal(tokenizer.encode(trainImages).length, trainImages.count * 16);
  tokenizer.dispose();
});

test('training lets the event loop run between steps (heartbeats, queries) and stops at the step an abort lands', async () => {
  const cfg = reproductionConfig.parse({
    ...smoke,
    training: { ...smoke.training, mae: { ...smoke.training.mae, iterations: 200, checkpointEvery: 200 } },
  });
  const controller = new AbortController();
  let ticks = 0;
  let lastStep = 0;
  // A timer stands for everything else a worker does: before the fix it fired only at checkpoints.
  const timer = setInterval(() => (ticks += 1), 0);
  try {
    await assert.rejects(
      runStage('mae', cfg, {
        dataDir,
        outDir: join(work, 'abort'),
        onProgress: (p) => {
          lastStep = p.step;
          if (p.step === 30) controller.abort(new Error('cancelled by the test'));
        },
        signal: controller.signal,
      }),
      /cancelled by the test/,
    );
  } finally {
    clearInterval(timer);
  }
  assert.equal(lastStep, 30, 'training went on after the abort');
  assert.ok(ticks >= 25, `a timer fired ${ticks} times in 30 steps`);
});
