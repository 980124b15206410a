/**
 * MaskGIT's Flax checkpoints (VQGAN tokenizer and class-conditional transformer) imported through their kinds:
 * reduced networks with random weights are written in the original format (flax.serialization msgpack,
 * {'params': tree} with MaskGIT's module names and layouts; arrays as ExtType 1 = packb((shape, dtype, bytes))),
 * and the PyTorch re-statement of MaskGIT's Flax modules (test/oracles/maskgit_flax.py, float64) runs them on fixed
 * inputs under both numerics (`--numerics lea-port | maskgit-flax`): imported with a choice, token ids match the
 * re-statement under it exactly, reconstructions and transformer logits to 1e-5 relative, and differ from the
 * other's by more. The full-size tables are checked against the
 * published sizes from shapes alone.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initCompute } from '../lib/compute/backend.js';
import { Rng } from '../lib/compute/rng.js';
import { tidyValues } from '../lib/compute/values.js';
import { BadInputError } from '../lib/errors.js';
import { loadParamsStrict, transferByNameAndShape } from '../lib/models/layers.js';
import { MaskGit, type MaskGitConfig } from '../lib/models/maskgit.js';
import { VqGan, type VqGanConfig } from '../lib/models/vq-tokenizer.js';
import { MASKGIT_NUMERICS } from '../lib/config/choice-values.js';
import { MASKGIT_NUMERIC_VALUES, type MaskGitNumerics } from '../lib/models/maskgit-numerics.js';
import { readNpy } from '../lib/tensors/npy.js';
import type { NdArray } from '../lib/tensors/ndarray.js';
import {
  maskgitTokenizerKind,
  tokenizerConfig,
  tokenizerTable,
  type FlaxTensor,
} from '../lib/weights/kinds/maskgit-tokenizer.js';
import {
  loadImportedTransformer,
  maskgitTransformerKind,
  transformerConfig,
  transformerTable,
} from '../lib/weights/kinds/maskgit-transformer.js';
import { openCheckpoint } from '../lib/weights/open.js';
import type { CheckpointSource, TensorRef } from '../lib/weights/source.js';
import { TensorTaker } from '../lib/weights/take.js';
import { runOracle } from './helpers/oracle.js';
import { maxRelError } from './helpers/compare.js';

let dir: string;
before(async () => {
  await initCompute();
  dir = await mkdtemp(join(tmpdir(), 'lea-maskgit-weights-'));
  console.log(runOracle(REFERENCE, [dir, fileURLToPath(new URL('./oracles', import.meta.url))]).trim());
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * Writes tokenizer.msgpack and transformer.msgpack (Flax trees, random weights) and the reference outputs as
 * .npy files. Sizes: VQGAN ch 32, mult [1, 1, 2], 2 blocks per level (and 2 middle), latent 16, 64 codes, on two
 * 16×24 images; transformer 64 codes + 1000 class slots + mask, width 64, 4 heads, MLP 128, 2 layers,
 * 16 tokens, 24-wide conditioning.
 */
const REFERENCE = String.raw`
import sys, math, numpy as np
out = sys.argv[1]
sys.path.insert(0, sys.argv[2])
from maskgit_flax import NUMERICS, Tree, f32, transformer_logits, vqgan_forward, write_flax
t = Tree(11)
rng, normal = t.rng, t.normal

# ---- VQGAN (spec 2.4) in Flax's tree ----
CH, MULT, NRB, LAT, CODES, G = 32, [1, 1, 2], 2, 16, 64, 32
vq = t.vqgan(CH, MULT, NRB, LAT, CODES)
write_flax(vq, f'{out}/tokenizer.msgpack')
N, HH, WW = 2, 16, 24
yy, xx = np.mgrid[0:HH, 0:WW]
images = np.stack([np.stack([(128 + 100 * np.sin(xx / 3 + n + ch) * np.cos(yy / 4 - ch)) for ch in range(3)], -1)
                   for n in range(N)]).astype(np.uint8)
images[1, :4, :5] = rng.integers(0, 256, (4, 5, 3))
np.save(f'{out}/images.npy', images)

# ---- MaskGIT transformer (spec 2.5) in Flax's tree, with LEA's decoder_embed ----
TC, SLOTS, D, H, FF, DEPTH, L, FEAT, B = 64, 1000, 64, 4, 128, 2, 16, 24, 2
tree = t.transformer(TC, SLOTS, D, H, FF, DEPTH, L)
write_flax(tree, f'{out}/transformer.msgpack')
emb_w, emb_b = normal(FEAT, D, std=1 / math.sqrt(FEAT)), normal(D, std=0.1)  # [in, out]
features = normal(B, FEAT)
tokens = rng.integers(0, TC, (B, L)).astype(np.int32)
tokens[0, ::3] = TC + SLOTS; tokens[1, 5:] = TC + SLOTS  # the mask id
for name, v in [('emb_w', emb_w), ('emb_b', emb_b), ('features', features), ('tokens', tokens)]:
    np.save(f'{out}/{name}.npy', v)

for numerics in NUMERICS:
    ids, gap, raw = vqgan_forward(vq, images, MULT, NRB, G, numerics)
    print(f'{numerics}: min relative code gap {gap:.2e}')
    np.save(f'{out}/ids-{numerics}.npy', ids)
    np.save(f'{out}/raw-{numerics}.npy', f32(raw))
    np.save(f'{out}/recon-{numerics}.npy', f32(np.clip(raw, 0, 1)))
    np.save(f'{out}/logits-{numerics}.npy', f32(transformer_logits(tree, emb_w, emb_b, features, tokens, H, TC, numerics)))
`;

const openFlax = (name: string): Promise<CheckpointSource> => openCheckpoint(join(dir, `${name}.msgpack`));

/** A source holding only the shapes of a table (reading it fails): the full-size checks read no values. */
function shapesOnly(table: readonly FlaxTensor[]): CheckpointSource {
  const refs = new Map<string, TensorRef>();
  for (const e of table) {
    refs.set(e.flax, {
      name: e.flax,
      dtype: 'float32',
      shape: e.stored,
      read: () => Promise.reject(new Error('shapes only')),
    });
  }
  return { path: 'full-size', format: 'flax-msgpack', tensors: refs, extras: {}, close: async () => {} };
}

function count(table: readonly FlaxTensor[]): number {
  return table.reduce((n, e) => n + e.stored.reduce((a, b) => a * b, 1), 0);
}

const read = async (n: string): Promise<NdArray> => readNpy(join(dir, `${n}.npy`));

/** Largest relative difference allowed against the float64 re-statement under the same numerics. */
const TOLERANCE = 1e-5;

/** Our output against the re-statement under each numerics: the one imported with, and the other. */
async function againstBoth(ours: ArrayLike<number>, output: string, numerics: MaskGitNumerics) {
  const other = MASKGIT_NUMERICS.find((n) => n !== numerics)!;
  const same = maxRelError(ours, (await read(`${output}-${numerics}`)).data as Float32Array);
  const crossed = maxRelError(ours, (await read(`${output}-${other}`)).data as Float32Array);
  console.log(
    `${numerics}: ${output} max rel error ${same.toExponential(2)} (against ${other}'s: ${crossed.toExponential(2)})`,
  );
  assert.ok(same < TOLERANCE, `${output}: ${same} from the ${numerics} re-statement`);
  // the choice matters at this size: the other numerics' outputs are out of tolerance
  assert.ok(crossed > TOLERANCE, `${output}: ${crossed} from the ${other} re-statement`);
}

for (const numerics of MASKGIT_NUMERICS) {
  test(`MaskGIT VQGAN msgpack, --numerics ${numerics}: architecture from the shapes; ids exact, images to ${TOLERANCE}`, async () => {
    const src = await openFlax('tokenizer');
    const imported = await maskgitTokenizerKind.importFrom(src, { numerics });
    await src.close();
    assert.deepEqual(imported.config, {
      chBase: 32,
      chMult: [1, 1, 2],
      numResBlocks: 2,
      numResMids: 2,
      chLatent: 16,
      codes: 64,
      groups: 32,
      beta: 0.25,
      numerics,
    });
    assert.deepEqual(imported.unused, []);
    assert.equal(imported.notes.groupNormEps, MASKGIT_NUMERIC_VALUES[numerics].groupNormEps);
    assert.match(String(imported.notes.numerics), new RegExp(`^${numerics}: `));

    const images = await read('images');
    const batch = { data: images.data as Uint8Array, count: 2, height: 16, width: 24 };
    const net = maskgitTokenizerKind.build!(imported.tensors, imported.config);
    const tokens = await net.outputs.tokens!(batch);
    const wantIds = await read(`ids-${numerics}`);
    assert.deepEqual(tokens.shape, [2, 24]);
    assert.deepEqual([...(tokens.data as Int32Array)], [...(wantIds.data as Int32Array)]);
    assert.ok(new Set(tokens.data as Int32Array).size > 8, 'the images should use many codes');
    const recon = await net.outputs.reconstruct!(batch);
    assert.deepEqual(recon.shape, [2, 16, 24, 3]);
    assert.ok(
      maxRelError(recon.data as Float32Array, (await read(`recon-${numerics}`)).data as Float32Array) <
        TOLERANCE,
    );
    await assert.rejects(
      net.outputs.tokens!({ data: new Uint8Array(10 * 16 * 3), count: 1, height: 10, width: 16 }),
      BadInputError,
    );
    net.dispose();

    // the unclamped decoder, so clamping cannot hide a difference
    const vq = new VqGan(imported.config as unknown as VqGanConfig, new Rng(0));
    loadParamsStrict(vq.params, imported.tensors, 'tokenizer');
    const raw = tidyValues(() => {
      const zq = tf.gather(
        vq.params.get('quantizer.embedding.weight')!,
        tf.tensor1d(tokens.data as Int32Array, 'int32'),
      );
      return vq.decoderForward(tf.reshape(zq, [2, 4, 6, 16]));
    });
    vq.dispose();
    await againstBoth(raw, 'raw', numerics);
  });

  test(`MaskGIT transformer msgpack, --numerics ${numerics}: heads from the kernels, decoder_embed added; logits to ${TOLERANCE}`, async () => {
    const src = await openFlax('transformer');
    const imported = await maskgitTransformerKind.importFrom(src, { numerics });
    await src.close();
    assert.deepEqual(imported.config, {
      codes: 64,
      classSlots: 1000,
      length: 16,
      featureDim: 1024,
      width: 64,
      depth: 2,
      heads: 4,
      mlpHidden: 128,
      dropout: 0.01,
      minMaskRate: 0.5,
      labelSmoothing: 0.1,
      numerics,
    });
    assert.deepEqual(imported.unused, []);
    assert.ok(!imported.tensors.has('decoder_embed.weight'));
    const { embedLayerNormEps, gelu } = MASKGIT_NUMERIC_VALUES[numerics];
    assert.deepEqual([imported.notes.embeddingLayerNormEps, imported.notes.gelu], [embedLayerNormEps, gelu]);
    const again = await openFlax('transformer');
    await assert.rejects(maskgitTransformerKind.importFrom(again, { heads: 8 }), /stores 4 heads/);
    await again.close();

    // the pipeline's loading (every tensor but decoder_embed), then the reference's decoder_embed [24 → 64]
    const model = new MaskGit(
      { ...(imported.config as unknown as MaskGitConfig), featureDim: 24 },
      new Rng(0),
    );
    loadImportedTransformer(model, imported.tensors, 'transformer');
    const embed = new Map([
      ['decoder_embed.weight', await read('emb_w')],
      ['decoder_embed.bias', await read('emb_b')],
    ]);
    const report = transferByNameAndShape(model.params, embed);
    assert.deepEqual(report.loaded, ['decoder_embed.weight', 'decoder_embed.bias']);
    assert.equal(model.maskId, 1064);
    const logits = model.logits(
      (await read('tokens')).data as Int32Array,
      (await read('features')).data as Float32Array,
      2,
    );
    model.dispose();
    await againstBoth(logits, 'logits', numerics);
  });
}

test('a structure that does not fit the shapes is refused naming the tensor', async () => {
  const cfg: VqGanConfig = {
    chBase: 32,
    chMult: [1, 2],
    numResBlocks: 1,
    numResMids: 1,
    chLatent: 8,
    codes: 16,
    groups: 32,
    beta: 0.25,
    numerics: 'lea-port',
  };
  const table = tokenizerTable(cfg);
  const extra = {
    flax: 'params/decoder/ResBlock_9/Conv_0/kernel',
    stored: [3, 3, 64, 64],
    name: '',
    shape: [],
  };
  await assert.rejects(maskgitTokenizerKind.importFrom(shapesOnly([...table, extra]), {}), /ResBlock_9/);
  const wrong = table.map((e) => (e.flax === 'params/decoder/Conv_0/bias' ? { ...e, stored: [63] } : e));
  await assert.rejects(
    maskgitTokenizerKind.importFrom(shapesOnly(wrong), {}),
    (err: Error) => err instanceof BadInputError && /decoder\/Conv_0\/bias.*\[63\]/.test(err.message),
  );
});

test('full-size tables: the published VQGAN and transformer sizes, read back from shapes alone', () => {
  const tok = tokenizerTable(maskgitTokenizerKind.fullSize as unknown as VqGanConfig);
  const tokShape = (n: string) => tok.find((e) => e.flax === `params/${n}`)?.stored;
  assert.deepEqual(tokShape('encoder/Conv_0/kernel'), [3, 3, 3, 128]);
  assert.deepEqual(tokShape('encoder/ResBlock_9/Conv_0/kernel'), [3, 3, 512, 512]);
  assert.deepEqual(tokShape('encoder/ResBlock_11/Conv_1/kernel'), [3, 3, 512, 512]);
  assert.deepEqual(tokShape('encoder/Conv_1/kernel'), [1, 1, 512, 256]);
  assert.deepEqual(tokShape('quantizer/codebook'), [1024, 256]);
  assert.deepEqual(tokShape('decoder/Conv_0/kernel'), [3, 3, 256, 512]);
  assert.deepEqual(tokShape('decoder/Conv_4/kernel'), [3, 3, 128, 128]);
  assert.deepEqual(tokShape('decoder/Conv_5/kernel'), [3, 3, 128, 3]);
  assert.deepEqual(tokShape('decoder/ResBlock_8/GroupNorm_0/scale'), [256]);
  assert.deepEqual(tokShape('decoder/ResBlock_11/GroupNorm_1/scale'), [128]);
  assert.equal(tokShape('decoder/ResBlock_12/Conv_0/kernel'), undefined);
  assert.equal(tok.filter((e) => /ResBlock_\d+\/Conv_2/.test(e.flax)).length, 4); // 2 widenings, 2 narrowings
  // parameter counts of the trees MaskGIT's own Flax modules initialise (jax.eval_shape), measured once
  assert.equal(count(tok), 54_515_587);
  const tokCfg = tokenizerConfig(new TensorTaker(shapesOnly(tok)));
  for (const [k, v] of Object.entries(maskgitTokenizerKind.fullSize))
    assert.deepEqual(tokCfg[k as keyof VqGanConfig], v);

  const fullT = { ...maskgitTransformerKind.fullSize, featureDim: 1024 } as unknown as MaskGitConfig;
  const tr = transformerTable(fullT);
  const trShape = (n: string) => tr.find((e) => e.flax === `params/${n}`)?.stored;
  assert.deepEqual(trShape('Embed_0/word_embeddings/embedding'), [2025, 768]);
  assert.deepEqual(trShape('Embed_0/position_embeddings/embedding'), [257, 768]);
  assert.deepEqual(trShape('TransformerLayer_23/Attention_0/self_attention/query/kernel'), [768, 16, 48]);
  assert.deepEqual(trShape('TransformerLayer_23/Attention_0/self_attention/out/kernel'), [16, 48, 768]);
  assert.deepEqual(trShape('TransformerLayer_0/Mlp_0/intermediate_output/kernel'), [768, 3072]);
  assert.deepEqual(trShape('MlmLayer_0/mlm_bias/bias'), [2025]);
  assert.equal(trShape('TransformerLayer_24/Mlp_0/layer_output/kernel'), undefined);
  assert.equal(count(tr), 172_457_193);
  // spec §2.5: ≈173 M parameters with LEA's decoder_embed (1024 → 768)
  const params = count(tr) + 1024 * 768 + 768;
  assert.ok(Math.abs(params - 173e6) < 0.005 * 173e6, `${params} parameters`);
  const trCfg = transformerConfig(new TensorTaker(shapesOnly(tr)), {});
  for (const [k, v] of Object.entries(maskgitTransformerKind.fullSize))
    assert.deepEqual(trCfg[k as keyof MaskGitConfig], v);
});
