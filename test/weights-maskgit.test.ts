/**
 * MaskGIT's Flax checkpoints (VQGAN tokenizer and class-conditional transformer) imported through their kinds:
 * reduced networks with random weights are written in the original format (flax.serialization msgpack,
 * {'params': tree} with MaskGIT's module names and layouts; arrays as ExtType 1 = packb((shape, dtype, bytes))),
 * and a PyTorch re-statement of spec §2.4-2.5 written here runs them on fixed inputs: token ids match exactly,
 * reconstructions and transformer logits to 1e-4 relative. The full-size tables are checked against the
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
import sys, math, numpy as np, torch
import torch.nn.functional as F
out = sys.argv[1]
torch.set_default_dtype(torch.float64)

sys.path.insert(0, sys.argv[2])
from maskgit_flax import Tree, f32, write_flax
t = Tree(11)
rng, normal = t.rng, t.normal
T = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float64))

# ---- VQGAN (spec 2.4) in Flax's tree: NHWC kernels [kh, kw, in, out], GroupNorm scale/bias ----
CH, MULT, NRB, LAT, CODES, G = 32, [1, 1, 2], 2, 16, 64, 32
LV = len(MULT)
vq = t.vqgan(CH, MULT, NRB, LAT, CODES)
enc, dec, codebook = vq['encoder'], vq['decoder'], vq['quantizer']['codebook']
write_flax(vq, f'{out}/tokenizer.msgpack')

def tconv(x, p):  # x NCHW; 'same' padding for odd kernels
    w = T(p['kernel']).permute(3, 2, 0, 1)
    return F.conv2d(x, w, T(p['bias']) if 'bias' in p else None, padding=w.shape[-1] // 2)
def tgn(x, p): return F.group_norm(x, G, T(p['scale']), T(p['bias']), eps=1e-5)
def tres(x, p):
    h = tconv(F.silu(tgn(x, p['GroupNorm_0'])), p['Conv_0'])
    h = tconv(F.silu(tgn(h, p['GroupNorm_1'])), p['Conv_1'])
    return h + (tconv(h, p['Conv_2']) if 'Conv_2' in p else x)  # MaskGIT's skip: 1x1 conv of the branch

def encode(x):
    h, k = tconv(x, enc['Conv_0']), 0
    for i in range(LV):
        for _ in range(NRB): h = tres(h, enc[f'ResBlock_{k}']); k += 1
        if i < LV - 1: h = F.avg_pool2d(h, 2)
    for _ in range(NRB): h = tres(h, enc[f'ResBlock_{k}']); k += 1
    return tconv(F.silu(tgn(h, enc['GroupNorm_0'])), enc['Conv_1'])

def decode(z):
    h, k, c = tconv(z, dec['Conv_0']), 0, 1
    for _ in range(NRB): h = tres(h, dec[f'ResBlock_{k}']); k += 1
    for i in reversed(range(LV)):
        for _ in range(NRB): h = tres(h, dec[f'ResBlock_{k}']); k += 1
        if i > 0:
            h = tconv(F.interpolate(h, scale_factor=2, mode='nearest'), dec[f'Conv_{c}']); c += 1
    return tconv(F.silu(tgn(h, dec['GroupNorm_0'])), dec[f'Conv_{c}'])

N, HH, WW = 2, 16, 24
yy, xx = np.mgrid[0:HH, 0:WW]
images = np.stack([np.stack([(128 + 100 * np.sin(xx / 3 + n + ch) * np.cos(yy / 4 - ch)) for ch in range(3)], -1)
                   for n in range(N)]).astype(np.uint8)
images[1, :4, :5] = rng.integers(0, 256, (4, 5, 3))
with torch.no_grad():
    z = encode(T(images).permute(0, 3, 1, 2) / 255).permute(0, 2, 3, 1).reshape(-1, LAT)
    e = T(codebook)
    d = (z ** 2).sum(1, keepdim=True) - 2 * z @ e.T + (e ** 2).sum(1)
    ids = d.argmin(1)
    top2 = d.topk(2, 1, largest=False).values
    raw = decode(e[ids].reshape(N, HH // 4, WW // 4, LAT).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
print('min relative code gap', ((top2[:, 1] - top2[:, 0]) / top2[:, 0].abs()).min().item())
np.save(f'{out}/images.npy', images)
np.save(f'{out}/ids.npy', ids.reshape(N, -1).int().numpy())
np.save(f'{out}/raw.npy', f32(raw.numpy()))
np.save(f'{out}/recon.npy', f32(raw.clamp(0, 1).numpy()))

# ---- MaskGIT transformer (spec 2.5, LEA's epsilons and exact GELU) in Flax's tree ----
TC, SLOTS, D, H, FF, DEPTH, L, FEAT, B = 64, 1000, 64, 4, 128, 2, 16, 24, 2
ROWS, HD = TC + SLOTS + 1, D // H
tree = t.transformer(TC, SLOTS, D, H, FF, DEPTH, L)
write_flax(tree, f'{out}/transformer.msgpack')

emb_w, emb_b = normal(FEAT, D, std=1 / math.sqrt(FEAT)), normal(D, std=0.1)  # LEA's decoder_embed, [in, out]
features = normal(B, FEAT)
tokens = rng.integers(0, TC, (B, L)).astype(np.int32)
tokens[0, ::3] = ROWS - 1; tokens[1, 5:] = ROWS - 1  # the mask id

def layer_norm(x, p, eps): return F.layer_norm(x, (D,), T(p['scale']), T(p['bias']), eps)
def lin(x, p): return x @ T(p['kernel']) + T(p['bias'])
with torch.no_grad():
    E = T(tree['Embed_0']['word_embeddings']['embedding'])
    cond = T(features) @ T(emb_w) + T(emb_b)
    h = torch.cat([cond[:, None], E[torch.from_numpy(tokens).long()]], 1) + T(tree['Embed_0']['position_embeddings']['embedding'])
    h = layer_norm(h, tree['Embed_0']['embeddings_ln'], 1e-5)
    for i in range(DEPTH):
        lay = tree[f'TransformerLayer_{i}']; att = lay['Attention_0']['self_attention']
        q, k, v = (torch.einsum('btd,dhk->bhtk', h, T(att[p]['kernel'])) + T(att[p]['bias'])[None, :, None] for p in ['query', 'key', 'value'])
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(HD), -1) @ v
        o = torch.einsum('bhtk,hkd->btd', a, T(att['out']['kernel'])) + T(att['out']['bias'])
        h = layer_norm(h + o, lay['Attention_0']['attention_output_ln'], 1e-12)
        m = lin(F.gelu(lin(h, lay['Mlp_0']['intermediate_output'])), lay['Mlp_0']['layer_output'])
        h = layer_norm(h + m, lay['Mlp_0']['layer_output_ln'], 1e-12)
    mlm = tree['MlmLayer_0']
    y = layer_norm(F.gelu(lin(h, mlm['mlm_dense'])), mlm['mlm_ln'], 1e-12)
    logits = (y @ E.T + T(mlm['mlm_bias']['bias']))[:, 1:, :TC]
for name, v in [('emb_w', emb_w), ('emb_b', emb_b), ('features', features), ('tokens', tokens), ('logits', f32(logits.numpy()))]:
    np.save(f'{out}/{name}.npy', v)
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

test('MaskGIT VQGAN msgpack: architecture from the shapes; token ids exact, reconstructions to 1e-4', async () => {
  const src = await openFlax('tokenizer');
  const imported = await maskgitTokenizerKind.importFrom(src, {});
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
  });
  assert.deepEqual(imported.unused, []);
  assert.equal(imported.notes.groupNormEps, 1e-5);

  const images = await read('images');
  const batch = { data: images.data as Uint8Array, count: 2, height: 16, width: 24 };
  const net = maskgitTokenizerKind.build!(imported.tensors, imported.config);
  const tokens = await net.outputs.tokens!(batch);
  const wantIds = await read('ids');
  assert.deepEqual(tokens.shape, [2, 24]);
  assert.deepEqual([...(tokens.data as Int32Array)], [...(wantIds.data as Int32Array)]);
  assert.ok(new Set(tokens.data as Int32Array).size > 8, 'the images should use many codes');
  const recon = await net.outputs.reconstruct!(batch);
  assert.deepEqual(recon.shape, [2, 16, 24, 3]);
  const reconErr = maxRelError(recon.data as Float32Array, (await read('recon')).data as Float32Array);
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
  const rawErr = maxRelError(raw, (await read('raw')).data as Float32Array);
  console.log(
    `tokenizer: reconstruction max rel error ${reconErr.toExponential(2)}, raw ${rawErr.toExponential(2)}`,
  );
  assert.ok(reconErr < 1e-4 && rawErr < 1e-4, `reconstruction ${reconErr}, raw decoder ${rawErr}`);
});

test('MaskGIT transformer msgpack: heads from the kernels, decoder_embed added; logits match to 1e-4', async () => {
  const src = await openFlax('transformer');
  const imported = await maskgitTransformerKind.importFrom(src, {});
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
  });
  assert.deepEqual(imported.unused, []);
  assert.ok(!imported.tensors.has('decoder_embed.weight'));
  const again = await openFlax('transformer');
  await assert.rejects(maskgitTransformerKind.importFrom(again, { heads: 8 }), /stores 4 heads/);
  await again.close();

  // the pipeline's loading (every tensor but decoder_embed), then the reference's decoder_embed [24 → 64]
  const model = new MaskGit({ ...(imported.config as unknown as MaskGitConfig), featureDim: 24 }, new Rng(0));
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
  const err = maxRelError(logits, (await read('logits')).data as Float32Array);
  console.log(`transformer: logits max rel error ${err.toExponential(2)}`);
  assert.ok(err < 1e-4, `logits ${err}`);
});

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
