/**
 * MinD-Vis's fMRI MAE imported from a torch.save checkpoint in MinD-Vis's own layout ({'model', 'optimizer',
 * 'epoch', 'scaler', 'config'}; config a pickled instance of a class the reader never constructs) matches a
 * PyTorch re-statement of the architecture (spec §2.2, written here) on fixed inputs and patch selections:
 * encoder latents, decoder predictions and the masked-patch loss, to 1e-4 relative.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initCompute } from '../lib/compute/backend.js';
import { Rng } from '../lib/compute/rng.js';
import { FmriMae, type MaeConfig } from '../lib/models/mae.js';
import { loadParamsStrict } from '../lib/models/layers.js';
import { ndarray } from '../lib/tensors/ndarray.js';
import { readNpy } from '../lib/tensors/npy.js';
import { mindvisMaeKind } from '../lib/weights/kinds/mindvis-mae.js';
import { openCheckpoint } from '../lib/weights/open.js';
import type { CheckpointSource, TensorRef } from '../lib/weights/source.js';
import { runOracle } from './helpers/oracle.js';
import { maxRelError } from './helpers/compare.js';

let dir: string;
before(async () => {
  await initCompute();
  dir = await mkdtemp(join(tmpdir(), 'lea-mae-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes fmri_encoder.pth (reduced MinD-Vis MAE, random weights) and the reference outputs as .npy files. */
const MINDVIS_REFERENCE = fileURLToPath(new URL('./oracles/mindvis_mae.py', import.meta.url));

test('MinD-Vis MAE .pth: config read as data, never constructed; latents, predictions and loss match PyTorch to 1e-4', async () => {
  runOracle(readFileSync(MINDVIS_REFERENCE, 'utf8'), [dir]);
  const src = await openCheckpoint(join(dir, 'fmri_encoder.pth'), { entry: mindvisMaeKind.entry! });
  const imported = await mindvisMaeKind.importFrom(src, {});
  await src.close();
  assert.deepEqual(imported.config, {
    patchSize: 4,
    width: 32,
    depth: 2,
    heads: 4,
    mlpRatio: 1,
    decoderWidth: 24,
    decoderDepth: 1,
    decoderHeads: 3,
    maskRatio: 0.75,
    eps: 1e-5,
  });
  assert.equal(imported.notes.heads, 'config entry');
  assert.equal(imported.notes.pretrainPatches, 10);
  assert.ok((imported.notes.posEmbedMaxDeviationFromSinCos as number) < 1e-6);
  assert.deepEqual(imported.unused, []);

  // the reference's 40 voxels are 10 whole patches: MinD-Vis pads in its dataset, its MAE module never does
  const mae = new FmriMae(imported.config as unknown as MaeConfig, new Rng(0, 'load'), 'minimal');
  loadParamsStrict(mae.params, imported.tensors, 'fmri_encoder.pth');
  const read = async (n: string) => (await readNpy(join(dir, `${n}.npy`))).data;
  const x = tf.tensor2d((await read('x')) as Float32Array, [3, 40]);
  const keep = Int32Array.from((await read('keep')) as Int32Array);
  const { loss, pred } = mae.forward(x, keep);
  const latents = mae.encode(x, keep).latents;
  const full = mae.encode(
    x,
    Int32Array.from({ length: 30 }, (_, i) => i % 10),
  ).latents;
  assert.ok(maxRelError(latents.dataSync() as Float32Array, (await read('latents')) as Float32Array) < 1e-4);
  assert.ok(maxRelError(full.dataSync() as Float32Array, (await read('full')) as Float32Array) < 1e-4);
  assert.ok(maxRelError(pred.dataSync() as Float32Array, (await read('pred')) as Float32Array) < 1e-4);
  const wantLoss = Number((await read('loss'))[0]);
  assert.ok(
    Math.abs(loss.dataSync()[0]! - wantLoss) / wantLoss < 1e-4,
    `loss ${loss.dataSync()[0]} vs ${wantLoss}`,
  );
  tf.dispose([x, loss, pred, latents, full]);
  mae.dispose();
});

test("full size: MinD-Vis's architecture (patch 16, 1024 x 24, decoder 512 x 8) built by the reference maps completely, --expect full's table", async () => {
  const sizes = { P: 16, D: 1024, DEPTH: 24, H: 16, DD: 512, DDEPTH: 8, DH: 16, K: 4656 };
  const table = JSON.parse(
    runOracle(readFileSync(MINDVIS_REFERENCE, 'utf8'), ['--shapes', JSON.stringify(sizes)]),
  ) as Record<string, number[]>;
  // shapes from the reference, values zeros: the mapping checks and converts every tensor it takes
  const tensors = new Map<string, TensorRef>(
    Object.entries(table).map(([name, shape]) => [
      name,
      { name, dtype: 'float32', shape, read: () => Promise.resolve(ndarray('float32', shape)) },
    ]),
  );
  const src: CheckpointSource = {
    path: 'full-size',
    format: 'torch-zip',
    tensors,
    extras: {},
    close: async () => {},
  };
  const imported = await mindvisMaeKind.importFrom(src, {});
  for (const [k, v] of Object.entries(mindvisMaeKind.fullSize)) assert.deepEqual(imported.config[k], v, k);
  assert.deepEqual(imported.unused, []);
  assert.equal(imported.notes.pretrainPatches, 291);
  assert.equal(imported.tensors.size, Object.keys(table).length - 2, 'all but the two fixed position tables');
});
