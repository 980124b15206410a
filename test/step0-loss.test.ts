/**
 * The imported initialisations take effect (issue 12): on a fixed batch with dropout off, the step-0 loss of the
 * maskgit stage's model started from an imported MaskGIT transformer, and of the fmri-ae stage's model started
 * from an imported MinD-Vis MAE, equal a PyTorch re-statement's (test/oracles/step0_loss.py) with the same
 * weights, masking and inputs to 1e-4 relative, and differ clearly from the loss of the same stage's model
 * without the import. The models come from the stages' own initialisers (initialMaskGit, initialAutoencoder);
 * the upstream files (reduced sizes, random weights) go through importWeights, as `lea weights import` does, into
 * the file a stage reads. The parameters the imports leave at the model's own initialisation (MaskGIT's
 * decoder_embed; the autoencoder's ROI embedding, pred, channel_mapper and decoder_pred) are exported from the
 * stage's model to the reference, which loads everything else from the upstream files itself.
 */
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initCompute } from '../lib/compute/backend.js';
import { Rng } from '../lib/compute/rng.js';
import { loadExperimentConfig } from '../lib/config/experiment.js';
import type { ReproductionConfig } from '../lib/config/reproduction.js';
import { paramsToArrays, type Params } from '../lib/models/layers.js';
import { PatchTokenizer } from '../lib/models/vq-tokenizer.js';
import type { ArtifactStore, FileSource } from '../lib/storage/artifact-store.js';
import { readNpy, writeNpy } from '../lib/tensors/npy.js';
import { writeSafetensors } from '../lib/tensors/safetensors.js';
import { fmriAeConfig, initialAutoencoder, initialMaskGit, maskgitConfig } from '../lib/train/stages.js';
import { importWeights, readWeightsFile } from '../lib/weights/import.js';
import { repoRoot } from './helpers/lea.js';
import { runOracle, runOracleFile } from './helpers/oracle.js';

const ORACLE = fileURLToPath(new URL('./oracles/step0_loss.py', import.meta.url));
const MINDVIS = fileURLToPath(new URL('./oracles/mindvis_mae.py', import.meta.url));
const TOLERANCE = 1e-4;
const BATCH = 3;
const ROI_SIZES = [9, 14, 6, 11];

/**
 * The smoke config with an autoencoder shaped like mindvis_mae.py's default MAE (width 32 × 2 blocks, 4 heads,
 * MLP ratio 1; decoder 24 × 1, 3 heads), its latent as wide as the MAE so that decoder_embed transfers as at
 * paper size, stage 0 imported, and MaskGIT's 1000 ImageNet class slots.
 */
const cfg = loadExperimentConfig(join(repoRoot, 'configs/smoke.yaml'), [
  'models.fmriAe={tokensPerRoi: 4, width: 32, depth: 2, heads: 4, mlpRatio: 1, latent: 32, decoderWidth: 24, ' +
    'decoderDepth: 1, decoderHeads: 3, voxelDropRate: 0.25}',
  'training.mae={initFrom: mindvis-mae}',
  'models.maskgit.classSlots=1000',
  'models.maskgit.initFrom=maskgit-transformer',
]) as ReproductionConfig;
// the smoke tokenizer (4×4 patches, 32 codes) on 16×16 images: 16 tokens; only its sizes matter here
const mc = maskgitConfig(cfg, new PatchTokenizer(4, new Float32Array(32 * 48)), { height: 16, width: 16 });
const sizes = JSON.stringify({ seed: 12, batch: BATCH, maskgit: mc, ae: fmriAeConfig(cfg, ROI_SIZES) });

let dir: string;
before(async () => {
  await initCompute();
  dir = await mkdtemp(join(tmpdir(), 'lea-step0-'));
  runOracleFile(ORACLE, ['inputs', dir, sizes]);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** importWeights (`lea weights import`) into the local file a stage reads; the store's put only keeps the file. */
async function importFile(kind: string, from: string): Promise<string> {
  const path = join(dir, `${kind}.safetensors`);
  const store = {
    put: (key: string, files: FileSource[]) => {
      const [file] = files;
      assert.ok(file && 'fromFile' in file);
      copyFileSync(file.fromFile, path);
      return Promise.resolve({ key, manifestSha256: '' });
    },
  } as unknown as ArtifactStore;
  await importWeights(store, { kind, from, name: kind, downloadDir: dir });
  return path;
}

/** The parameters named, as the reference reads them. */
async function exportParams(params: Params, names: string[], file: string): Promise<void> {
  const all = paramsToArrays(params);
  await writeSafetensors(join(dir, file), new Map(names.map((n) => [n, all.get(n)!])));
}

const scalar = (f: () => tf.Scalar): number => tf.tidy(() => f().dataSync()[0]!);
const relError = (ours: number, ref: number): number => Math.abs(ours - ref) / Math.abs(ref);
const read = async (name: string) => (await readNpy(join(dir, `${name}.npy`))).data;

test('maskgit: the step-0 loss from an imported MaskGIT transformer is the PyTorch reference loss', async () => {
  const init = await importFile('maskgit-transformer', join(dir, 'transformer.msgpack'));
  const { model, report } = await initialMaskGit(cfg, mc, { weights: { init } });
  const { model: fresh } = await initialMaskGit(cfg, mc, {});
  try {
    assert.match(report ?? '', /^initialised \d+ tensors/);
    const imported = (await readWeightsFile(init)).tensors;
    const own = [...model.params.keys()].filter((n) => !imported.has(n));
    assert.deepEqual(own, ['decoder_embed.weight', 'decoder_embed.bias']);
    await exportParams(model.params, own, 'maskgit_own.safetensors');

    const tokens = (await read('tokens')) as Int32Array;
    const features = (await read('features')) as Float32Array;
    // the stage's masking, drawn once: both sides see these positions
    const { input, masked } = model.maskTokens(tokens, BATCH, new Rng(3, 'step0/mask'));
    await writeNpy(join(dir, 'masked.npy'), { dtype: 'int32', shape: [masked.length], data: masked });
    const loss = scalar(() => model.stepLoss(model.stepInputs(input, masked, tokens, features, BATCH)));
    const scratch = scalar(() => fresh.stepLoss(fresh.stepInputs(input, masked, tokens, features, BATCH)));
    const ref = (JSON.parse(runOracleFile(ORACLE, ['maskgit', dir, sizes])) as { loss: number }).loss;
    const err = relError(loss, ref);
    console.log(
      `maskgit: ${masked.length} masked; loss ${loss} vs PyTorch ${ref} (rel ${err.toExponential(2)}); ` +
        `without the import ${scratch}`,
    );
    assert.ok(err < TOLERANCE, `loss ${loss}, reference ${ref}`);
    assert.ok(relError(scratch, ref) > 100 * TOLERANCE, `without the import ${scratch}, imported ${ref}`);
  } finally {
    model.dispose();
    fresh.dispose();
  }
});

test('fmri-ae: the step-0 loss from an imported MinD-Vis MAE is the PyTorch reference loss', async () => {
  runOracle(readFileSync(MINDVIS, 'utf8'), [dir]); // fmri_encoder.pth at the script's default sizes
  const mae = await importFile('mindvis-mae', join(dir, 'fmri_encoder.pth'));
  const { model, transfer } = await initialAutoencoder(cfg, ROI_SIZES, { outDir: dir, weights: { mae } });
  const fromScratch: ReproductionConfig = {
    ...cfg,
    training: { ...cfg.training, fmriAe: { ...cfg.training.fmriAe, initFrom: 'none' } },
  };
  const { model: fresh } = await initialAutoencoder(fromScratch, ROI_SIZES, { outDir: dir });
  try {
    assert.ok(transfer);
    const own = transfer.notLoaded.map((n) => n.name);
    await exportParams(model.params, own, 'ae_own.safetensors');

    const x = (await read('fmri')) as Float32Array;
    const k = ROI_SIZES.reduce((a, b) => a + b);
    // voxel dropout off: the clean rows are input and target
    const lossOf = (m: typeof model) =>
      scalar(() => m.loss(tf.tensor2d(x, [BATCH, k]), tf.tensor2d(x, [BATCH, k])));
    const loss = lossOf(model);
    const scratch = lossOf(fresh);
    const ref = JSON.parse(runOracleFile(ORACLE, ['ae', dir, sizes])) as {
      loss: number;
      own: string[];
      unused: string[];
    };
    // the same non-strict transfer on both sides; the import drops MinD-Vis's fixed sin-cos tables
    assert.deepEqual([...own].sort(), ref.own);
    assert.deepEqual(
      [...transfer.unused].sort(),
      ref.unused.filter((n) => n !== 'pos_embed' && n !== 'decoder_pos_embed'),
    );
    const err = relError(loss, ref.loss);
    console.log(
      `fmri-ae: ${transfer.loaded.length} tensors transferred, ${own.length} own; loss ${loss} vs PyTorch ` +
        `${ref.loss} (rel ${err.toExponential(2)}); without the import ${scratch}`,
    );
    assert.ok(err < TOLERANCE, `loss ${loss}, reference ${ref.loss}`);
    assert.ok(
      relError(scratch, ref.loss) > 100 * TOLERANCE,
      `without the import ${scratch}, imported ${ref.loss}`,
    );
  } finally {
    model.dispose();
    fresh.dispose();
  }
});
