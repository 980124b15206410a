/**
 * lib/models: paper-size structure (shapes, parameter counts against spec §2), each custom layer against
 * a plain reference or finite differences, the MAE → autoencoder transfer, tokenizers and image features.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { initCompute } from '../lib/compute/backend.js';
import { Rng } from '../lib/compute/rng.js';
import { tidyValues } from '../lib/compute/values.js';
import { FmriAutoencoder, dropVoxels, type FmriAeConfig } from '../lib/models/fmri-autoencoder.js';
import { RandomReluFeatures, flipHorizontal } from '../lib/models/image-features.js';
import {
  countParams,
  dropoutMask,
  paramsToArrays,
  sincosPositions,
  type Params,
} from '../lib/models/layers.js';
import { stopGradient } from '../lib/models/fused/op.js';
import { FmriMae, loadMaeIntoAutoencoder, type MaeConfig } from '../lib/models/mae.js';
import { MaskGit, type MaskGitConfig } from '../lib/models/maskgit.js';
import { MASKGIT_NUMERIC_VALUES } from '../lib/models/maskgit-numerics.js';
import { MASKGIT_NUMERICS } from '../lib/config/choice-values.js';
import {
  VqGan,
  fitPatchTokenizer,
  nearestCodes,
  extractPatches,
  type VqGanConfig,
} from '../lib/models/vq-tokenizer.js';
import { lossAndGrads } from '../lib/train/adamw.js';
import { paperAeConfig, paperMaskGitConfig } from './helpers/paper.js';

before(async () => {
  await initCompute();
});

function within(actual: number, expected: number, rel: number, what: string): void {
  assert.ok(
    Math.abs(actual - expected) <= rel * expected,
    `${what}: ${actual} is not within ${rel * 100}% of ${expected}`,
  );
}

test('paper-size fMRI autoencoder (GOD sbj_1): ~172 M parameters, 151 M in the encoder blocks, shapes of a batch of 2', () => {
  const cfg: FmriAeConfig = paperAeConfig();
  const ae = new FmriAutoencoder(cfg, new Rng(0, 'paper-ae'));
  try {
    const total = countParams(ae.params);
    within(total, 172e6, 0.01, 'autoencoder parameters');
    const blocks = [...ae.params]
      .filter(([n]) => n.startsWith('blocks.'))
      .reduce((s, [, v]) => s + v.size, 0);
    within(blocks, 151e6, 0.01, 'encoder block parameters');
    assert.equal(ae.voxels, 4466);
    assert.equal(ae.tokens, 256);
    assert.deepEqual(ae.params.get('patch_embed.layers.0.1.weight')?.shape, [1004, 1024]);
    assert.deepEqual(ae.params.get('channel_mapper.7.0.weight')?.shape, [512, 760]);
    assert.deepEqual(ae.params.get('decoder_pred.weight')?.shape, [3, 32, 1]);
    tf.tidy(() => {
      const x = tf.tensor2d(new Rng(1).fillNormal(new Float32Array(2 * 4466)), [2, 4466]);
      const z = ae.encode(x);
      assert.deepEqual(z.shape, [2, 1024]);
      const y = ae.decode(z);
      assert.deepEqual(y.shape, [2, 4466]);
      assert.ok(Number.isFinite(tf.sum(y).dataSync()[0]));
    });
  } finally {
    ae.dispose();
  }
});

test('paper-size MaskGIT transformer: ~173 M parameters, mask id 2024, logits [2, 256, 1024]', () => {
  const cfg = paperMaskGitConfig();
  const mg = new MaskGit(cfg, new Rng(0, 'paper-maskgit'));
  try {
    within(countParams(mg.params), 173e6, 0.01, 'MaskGIT parameters');
    assert.equal(mg.maskId, 2024);
    assert.deepEqual(mg.params.get('token_emb.weight')?.shape, [2025, 768]);
    assert.deepEqual(mg.params.get('de_pos_emb.weight')?.shape, [257, 768]);
    const logits = mg.logits(
      new Int32Array(2 * 256).fill(2024),
      new Rng(2).fillNormal(new Float32Array(2 * 1024)),
      2,
    );
    assert.equal(logits.length, 2 * 256 * 1024);
    assert.ok(logits.every(Number.isFinite));
  } finally {
    mg.dispose();
  }
});

test('paper-size VQGAN structure: MaskGIT tokenizer names and shapes, 16x downsampling, 1024 x 256 codebook', () => {
  const cfg: VqGanConfig = {
    chBase: 128,
    chMult: [1, 1, 2, 2, 4],
    numResBlocks: 2,
    numResMids: 2,
    chLatent: 256,
    codes: 1024,
    groups: 32,
    beta: 0.25,
    numerics: 'lea-port',
  };
  const vq = new VqGan(cfg, new Rng(0, 'paper-vq'));
  try {
    assert.deepEqual(vq.grid(256, 256), [16, 16]);
    assert.deepEqual(vq.params.get('encoder.conv_in.weight')?.shape, [3, 3, 3, 128]);
    assert.equal(vq.params.has('encoder.conv_in.bias'), false);
    assert.deepEqual(vq.params.get('encoder.down.2.block.0.nin_shortcut.weight')?.shape, [1, 1, 256, 256]);
    assert.deepEqual(vq.params.get('decoder.up.1.block.0.nin_shortcut.weight')?.shape, [1, 1, 256, 256]);
    assert.deepEqual(vq.params.get('decoder.conv_out.weight')?.shape, [3, 3, 128, 3]);
    assert.deepEqual(vq.params.get('quantizer.embedding.weight')?.shape, [1024, 256]);
    // the convolutions are size-agnostic: 32 px exercises every layer at 1/64 of the 256 px cost
    const rng = new Rng(3);
    const img = {
      data: Uint8Array.from({ length: 2 * 32 * 32 * 3 }, () => rng.integer(0, 256)),
      count: 2,
      height: 32,
      width: 32,
    };
    const ids = vq.encode(img);
    assert.equal(ids.length, 2 * 2 * 2);
    assert.ok(ids.every((i) => i >= 0 && i < 1024));
    const out = vq.decode(ids, 2, 32, 32);
    assert.equal(out.length, 2 * 32 * 32 * 3);
    assert.ok(out.every((v) => v >= 0 && v <= 1));
  } finally {
    vq.dispose();
  }
});

test('sin-cos positions: zero CLS row, then sines and cosines of p·10000^(−k/(D/2))', () => {
  const d = 8;
  const pos = sincosPositions(d, 5);
  assert.ok(pos.subarray(0, d).every((v) => v === 0));
  for (const p of [0, 3]) {
    for (let k = 0; k < d / 2; k++) {
      const w = 1 / 10000 ** (k / (d / 2));
      assert.ok(Math.abs((pos[(p + 1) * d + k] as number) - Math.sin(p * w)) < 1e-6);
      assert.ok(Math.abs((pos[(p + 1) * d + d / 2 + k] as number) - Math.cos(p * w)) < 1e-6);
    }
  }
});

const smallAe: FmriAeConfig = {
  roiSizes: [5, 7, 4],
  tokensPerRoi: 3,
  width: 8,
  depth: 1,
  heads: 2,
  mlpRatio: 1,
  latent: 6,
  decoderWidth: 8,
  decoderDepth: 1,
  decoderHeads: 2,
  eps: 1e-5,
};

/**
 * Redraws every parameter at O(1) activation scale: norms around 1/0 and biases, tokens ±0.3, weights
 * N(0, 1/fan_in). At the models' own init (std 0.02) attention is nearly uniform and some gradients are
 * ~1e-6, below what float32 finite differences resolve; the gradient maths does not depend on the scale.
 */
function perturb(params: Params, rng: Rng): void {
  for (const [n, v] of params) {
    const values = new Float32Array(v.size);
    if (v.rank === 1 || n.endsWith('_token')) {
      rng.fillNormal(values, /norm|ln|mlps\.2/.test(n) && n.endsWith('weight') ? 1 : 0, 0.3);
    } else {
      rng.fillNormal(values, 0, 1 / Math.sqrt(v.shape.slice(0, -1).reduce((a, b) => a * b, 1)));
    }
    tf.tidy(() => v.assign(tf.tensor(values, v.shape)));
  }
}

/**
 * Gradient check against central differences along two unit directions per parameter tensor: the analytic
 * gradient's own direction (where the directional derivative is largest, |g|) and a random one. The
 * differences are taken of `reference` (default: the loss itself).
 * Tolerances (tfjs has no float64): float32 round-off makes each loss evaluation uncertain by ~1e-6·|L|, so the
 * difference quotient over 2h = 2e-2 carries ~5e-5·|L| of noise (allowed: 1e-4·|L|); the O(h²) truncation
 * error of these smooth functions is well under 1% at h = 1e-2 (measured: < 0.5% on every tensor here).
 * Hence |analytic − numeric| ≤ 2%·max(|analytic|, |numeric|) + 1e-4·|L|.
 */
function gradCheck(
  params: Params,
  loss: () => tf.Scalar,
  rng: Rng,
  skip: (name: string) => boolean = () => false,
  reference: () => tf.Scalar = loss,
): number {
  const h = 1e-2;
  const { loss: value, grads } = lossAndGrads(params, loss);
  const noise = 1e-4 * Math.abs(value.dataSync()[0] as number);
  value.dispose();
  let checked = 0;
  for (const [name, v] of params) {
    if (skip(name)) continue;
    const g = grads.get(name) as tf.Tensor;
    const gv = Float32Array.from(g.dataSync());
    const gnorm = Math.hypot(...gv);
    assert.ok(gnorm > 0, `${name}: zero gradient`);
    const random = rng.fillNormal(new Float32Array(v.size));
    const rnorm = Math.hypot(...random);
    for (const [label, dir] of [
      ['gradient', gv.map((x) => x / gnorm)],
      ['random', random.map((x) => x / rnorm)],
    ] as const) {
      const analytic = dir.reduce((s, x, i) => s + x * (gv[i] as number), 0);
      const orig = tf.clone(v);
      const at = (sign: number) =>
        tf.tidy(() => {
          v.assign(tf.add(orig, tf.mul(tf.tensor(dir, v.shape), sign * h)));
          return reference().dataSync()[0] as number;
        });
      const numeric = (at(1) - at(-1)) / (2 * h);
      v.assign(orig);
      orig.dispose();
      const tol = 0.02 * Math.max(Math.abs(analytic), Math.abs(numeric)) + noise;
      assert.ok(
        Math.abs(analytic - numeric) <= tol,
        `${name} (${label} direction): analytic ${analytic} vs numeric ${numeric}`,
      );
    }
    checked++;
  }
  tf.dispose([...grads.values()]);
  return checked;
}

test('fMRI autoencoder: every parameter gradient matches finite differences (ROI tokeniser, blocks, head)', () => {
  const rng = new Rng(5);
  const ae = new FmriAutoencoder(smallAe, rng);
  perturb(ae.params, rng);
  const x = tf.tensor2d(rng.fillNormal(new Float32Array(3 * 16)), [3, 16]);
  const target = tf.tensor2d(rng.fillNormal(new Float32Array(3 * 16)), [3, 16]);
  assert.equal(
    gradCheck(ae.params, () => ae.loss(x, target), rng),
    ae.params.size,
  );
  tf.dispose([x, target]);
  ae.dispose();
});

const smallMae: MaeConfig = {
  patchSize: 4,
  width: 8,
  depth: 1,
  heads: 2,
  mlpRatio: 1,
  decoderWidth: 6,
  decoderDepth: 1,
  decoderHeads: 2,
  maskRatio: 0.75,
  eps: 1e-5,
};

test('MAE: wrap padding, 75% masking per sample, loss on masked patches only, gradients match finite differences', () => {
  const rng = new Rng(6);
  const mae = new FmriMae(smallMae, rng, 'minimal');
  perturb(mae.params, rng);
  const k = 37; // not a multiple of 4: 3 voxels wrap around, 10 patches, 2 kept
  assert.equal(mae.patches(k), 10);
  // MinD-Vis's pad_to_patch_size agrees on 37 voxels but adds a whole wrapped patch to 36
  const mindvis = new FmriMae(smallMae, new Rng(6), 'mindvis');
  assert.equal(mindvis.patches(k), 10);
  assert.equal(mae.patches(36), 9);
  assert.equal(mindvis.patches(36), 10);
  const x36 = tf.tensor2d(
    Float32Array.from({ length: 72 }, (_, i) => i),
    [2, 36],
  );
  assert.deepEqual(
    Array.from(mindvis.patchify(x36).dataSync().subarray(36, 40)),
    [0, 1, 2, 3],
    'the extra patch repeats the first voxels',
  );
  x36.dispose();
  mindvis.dispose();
  assert.equal(mae.kept(k), 2);
  const xv = rng.fillNormal(new Float32Array(3 * k));
  const x = tf.tensor2d(xv, [3, k]);
  const padded = mae.patchify(x).dataSync();
  assert.equal(padded[k], xv[0]); // row 0, voxel 37 repeats voxel 0
  const keep = mae.drawKeep(3, k, new Rng(7));
  for (let s = 0; s < 3; s++) assert.equal(new Set(keep.subarray(2 * s, 2 * s + 2)).size, 2);
  // the loss is the mean squared error over exactly the masked patches
  const { loss, pred } = mae.forward(x, keep);
  const loss0 = loss.dataSync()[0] as number;
  const manual = tf.tidy(() => {
    const target = mae.patchify(x).arraySync() as number[][][];
    const p = pred.arraySync();
    let sum = 0;
    let n = 0;
    for (let s = 0; s < 3; s++) {
      const kept = new Set(keep.subarray(2 * s, 2 * s + 2));
      for (let q = 0; q < 10; q++) {
        if (kept.has(q)) continue;
        for (let j = 0; j < 4; j++)
          sum += ((p[s]?.[q]?.[j] as number) - (target[s]?.[q]?.[j] as number)) ** 2;
        n += 4;
      }
    }
    return sum / n;
  });
  tf.dispose([loss, pred]);
  assert.ok(Math.abs(loss0 - manual) < 1e-5, `${loss0} vs ${manual}`);
  assert.equal(
    gradCheck(mae.params, () => mae.forward(x, keep).loss, rng),
    mae.params.size,
  );
  x.dispose();
  mae.dispose();
});

test('MAE weights load into the autoencoder by name and shape; what did not load is listed', () => {
  const rng = new Rng(8);
  const mae = new FmriMae(
    { ...smallMae, width: smallAe.width, decoderWidth: smallAe.decoderWidth },
    rng,
    'minimal',
  );
  const ae = new FmriAutoencoder(smallAe, rng);
  const before = paramsToArrays(ae.params);
  const report = loadMaeIntoAutoencoder(ae, paramsToArrays(mae.params));
  for (const n of [
    'cls_token',
    'blocks.0.attn.qkv.weight',
    'norm.weight',
    'mask_token',
    'decoder_blocks.0.mlp.fc2.bias',
    'decoder_norm.bias',
  ]) {
    assert.ok(report.loaded.includes(n), `${n} should load`);
    assert.deepEqual(ae.params.get(n)?.dataSync(), mae.params.get(n)?.dataSync());
  }
  const notLoaded = new Map(report.notLoaded.map((e) => [e.name, e.reason]));
  assert.match(notLoaded.get('decoder_embed.weight') ?? '', /\[8, 8\].*\[6, 8\]/); // MAE 8→8, AE latent 6→8
  assert.match(notLoaded.get('decoder_pred.weight') ?? '', /\[8, 4\].*\[3, 3, 1\]/);
  for (const n of ['patch_embed.layers.0.0.weight', 'pred.weight', 'channel_mapper.2.0.bias'])
    assert.equal(notLoaded.get(n), 'absent from the source');
  assert.deepEqual(report.unused.sort(), ['patch_embed.proj.bias', 'patch_embed.proj.weight']);
  assert.deepEqual(ae.params.get('pred.weight')?.dataSync(), before.get('pred.weight')?.data);
  mae.dispose();
  ae.dispose();
});

const smallMaskGit: MaskGitConfig = {
  codes: 6,
  classSlots: 2,
  length: 5,
  featureDim: 4,
  width: 8,
  depth: 2,
  heads: 2,
  mlpHidden: 12,
  dropout: 0.1,
  minMaskRate: 0.5,
  labelSmoothing: 0.1,
  numerics: 'lea-port',
};

test('MaskGIT: masking ratio max(cos(πu/2), 0.5), mask id after the class slots, label-smoothed loss on masked positions', () => {
  const mg = new MaskGit(smallMaskGit, new Rng(9));
  assert.equal(mg.maskId, 8);
  assert.equal(mg.rows, 9);
  const tokens = Int32Array.from({ length: 3 * 5 }, (_, i) => i % 6);
  for (let seed = 0; seed < 20; seed++) {
    const probe = new Rng(seed);
    const u = probe.uniform();
    const count = Math.floor(5 * Math.max(Math.cos((Math.PI / 2) * u), 0.5));
    const { input, masked } = mg.maskTokens(tokens, 3, new Rng(seed));
    assert.equal(masked.length, 3 * count);
    assert.equal(input.filter((t) => t === 8).length, 3 * count);
    for (const m of masked) assert.equal(input[m], 8);
  }
  // without dropout, the loss is the smoothed cross-entropy of the inference logits at the masked positions
  const plain = new MaskGit({ ...smallMaskGit, dropout: 0 }, new Rng(10));
  const feats = new Rng(11).fillNormal(new Float32Array(3 * 4));
  const { input, masked } = plain.maskTokens(tokens, 3, new Rng(12));
  const logits = plain.logits(input, feats, 3);
  let expected = 0;
  for (const m of masked) {
    const row = Array.from(logits.subarray(m * 6, m * 6 + 6));
    const lse = Math.log(row.reduce((s, v) => s + Math.exp(v), 0));
    const logp = row.map((v) => v - lse);
    expected += -(0.9 * (logp[tokens[m] as number] as number) + (0.1 / 6) * logp.reduce((s, v) => s + v, 0));
  }
  expected /= masked.length;
  const got = tf.tidy(() => plain.loss(tokens, feats, 3, new Rng(12)).dataSync()[0] as number);
  assert.ok(Math.abs(got - expected) < 1e-5, `${got} vs ${expected}`);
  mg.dispose();
  plain.dispose();
});

/** MaskGIT written op by op and differentiated by tfjs itself, drawing masks and dropout in the model's order. */
function plainMaskGitLoss(
  mg: MaskGit,
  tokens: Int32Array,
  feats: Float32Array,
  batch: number,
  rng: Rng,
): tf.Scalar {
  const { length: l, width: d, heads, codes, dropout: rate, labelSmoothing: eps } = mg.cfg;
  const hd = d / heads;
  const p = (n: string) => mg.params.get(n) as tf.Variable;
  const ln = (x: tf.Tensor, n: string, e: number) => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(
      tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, e))), p(`${n}.weight`)),
      p(`${n}.bias`),
    );
  };
  const lin = (x: tf.Tensor, n: string) =>
    tf.add(tf.matMul(x as tf.Tensor2D, p(`${n}.weight`) as tf.Tensor2D), p(`${n}.bias`));
  const { embedLayerNormEps, gelu: form } = MASKGIT_NUMERIC_VALUES[mg.cfg.numerics];
  const gelu = (x: tf.Tensor) =>
    form === 'erf'
      ? tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.div(x, Math.SQRT2))))
      : tf.mul(
          tf.mul(x, 0.5),
          tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3)))))),
        );
  const drop = (x: tf.Tensor) => tf.mul(x, dropoutMask(x.shape, rate, rng));
  const { input, masked } = mg.maskTokens(tokens, batch, rng);
  const c = tf.reshape(lin(tf.tensor2d(feats, [batch, mg.cfg.featureDim]), 'decoder_embed'), [batch, 1, d]);
  const z = tf.reshape(tf.gather(p('token_emb.weight'), tf.tensor1d(input, 'int32')), [batch, l, d]);
  let h = tf.reshape(
    drop(ln(tf.add(tf.concat([c, z], 1), p('de_pos_emb.weight')), 'ln', embedLayerNormEps)),
    [batch * (l + 1), d],
  );
  const t = l + 1;
  for (let i = 0; i < mg.cfg.depth; i++) {
    const pre = `decoder.${i}.`;
    const split = (n: string) =>
      tf.transpose(
        tf.reshape(lin(h, `${pre}self_attn.${n}`), [batch, t, heads, hd]),
        [0, 2, 1, 3],
      ) as tf.Tensor4D;
    const att = drop(
      tf.softmax(tf.div(tf.matMul(split('query'), split('key'), false, true), Math.sqrt(hd))),
    ) as tf.Tensor4D;
    const o = tf.reshape(tf.transpose(tf.matMul(att, split('value')), [0, 2, 1, 3]), [batch * t, d]);
    h = ln(tf.add(h, drop(lin(o, `${pre}self_attn.proj`))), `${pre}norm1`, 1e-12);
    h = ln(tf.add(h, drop(lin(gelu(lin(h, `${pre}linear1`)), `${pre}linear2`))), `${pre}norm2`, 1e-12);
  }
  const rows = tf.gather(
    h,
    Int32Array.from(masked, (m) => m + Math.floor(m / l) + 1),
  );
  const e = ln(gelu(lin(rows, 'mlps.0')), 'mlps.2', 1e-12);
  const table = tf.slice(p('token_emb.weight'), [0, 0], [codes, d]);
  const logp = tf.logSoftmax(
    tf.add(
      tf.matMul(e as tf.Tensor2D, table as tf.Tensor2D, false, true),
      tf.slice(p('mlps_bias'), [0], [codes]),
    ),
  );
  const target = new Float32Array(masked.length * codes).fill(eps / codes);
  masked.forEach((m, j) => {
    target[j * codes + (tokens[m] as number)]! += 1 - eps;
  });
  return tf.neg(tf.mean(tf.sum(tf.mul(tf.tensor2d(target, [masked.length, codes]), logp), 1))) as tf.Scalar;
}

for (const numerics of MASKGIT_NUMERICS)
  test(`MaskGIT, ${numerics} numerics: the loss and every gradient equal an op-by-op re-statement's (post-LN blocks, dropout)`, () => {
    const rng = new Rng(21);
    const mg = new MaskGit({ ...smallMaskGit, numerics }, rng);
    perturb(mg.params, rng);
    const tokens = Int32Array.from({ length: 3 * 5 }, () => rng.integer(0, 6));
    const feats = rng.fillNormal(new Float32Array(3 * 4));
    const ours = lossAndGrads(mg.params, () => mg.loss(tokens, feats, 3, new Rng(22)));
    const ref = lossAndGrads(mg.params, () => plainMaskGitLoss(mg, tokens, feats, 3, new Rng(22)));
    const [a, b] = [ours.loss.dataSync()[0] as number, ref.loss.dataSync()[0] as number];
    assert.ok(Math.abs(a - b) < 1e-5 * Math.abs(b), `loss ${a} vs ${b}`);
    for (const name of mg.params.keys()) {
      const err = tf.tidy(() => {
        const g = ref.grads.get(name) as tf.Tensor;
        return (
          (tf.max(tf.abs(tf.sub(ours.grads.get(name) as tf.Tensor, g))).dataSync()[0] as number) /
          ((tf.max(tf.abs(g)).dataSync()[0] as number) + 1e-30)
        );
      });
      // key biases have a true gradient of 0 (softmax ignores a shift per row): both sides are round-off there
      if (!name.endsWith('self_attn.key.bias')) assert.ok(err < 1e-4, `${name}: relative error ${err}`);
    }
    tf.dispose([ours.loss, ref.loss, ...ours.grads.values(), ...ref.grads.values()]);
    mg.dispose();
  });

test('MaskGIT: every parameter gradient matches finite differences (post-LN blocks with dropout, tied head)', () => {
  const rng = new Rng(13);
  const mg = new MaskGit(smallMaskGit, rng);
  perturb(mg.params, rng);
  const tokens = Int32Array.from({ length: 3 * 5 }, () => rng.integer(0, 6));
  const feats = rng.fillNormal(new Float32Array(3 * 4));
  // the same masks and dropout draws at every evaluation: a fresh Rng of one seed
  const loss = () => mg.loss(tokens, feats, 3, new Rng(14));
  const isKeyBias = (name: string) => name.endsWith('self_attn.key.bias');
  assert.equal(gradCheck(mg.params, loss, rng, isKeyBias), mg.params.size - smallMaskGit.depth);
  // a key bias adds q·b to every logit of a query's row, which softmax ignores: its true gradient is 0
  const { grads } = lossAndGrads(mg.params, loss);
  for (const [name, g] of grads) {
    if (isKeyBias(name))
      assert.ok((tf.max(tf.abs(g)).dataSync()[0] as number) < 1e-6, `${name} gradient should vanish`);
  }
  tf.dispose([...grads.values()]);
  mg.dispose();
});

const smallVq: VqGanConfig = {
  chBase: 4,
  chMult: [1, 2],
  numResBlocks: 1,
  numResMids: 1,
  chLatent: 3,
  codes: 5,
  groups: 2,
  beta: 0.25,
  numerics: 'lea-port',
};

/** A small VQGAN with perturbed weights and its codes spread out, so that the small perturbations of a
 * gradient check never change a code assignment. */
function spreadVqGan(seed: number): { rng: Rng; vq: VqGan } {
  const rng = new Rng(seed);
  const vq = new VqGan(smallVq, rng);
  perturb(vq.params, rng);
  const [codes, width] = [smallVq.codes, smallVq.chLatent];
  tf.tidy(() =>
    vq.params
      .get('quantizer.embedding.weight')
      ?.assign(tf.tensor2d(rng.fillNormal(new Float32Array(codes * width)), [codes, width])),
  );
  return { rng, vq };
}

test('VQGAN: quantiser picks the nearest code; decoder and codebook gradients match finite differences', () => {
  const { rng, vq } = spreadVqGan(15);
  const img = {
    data: Uint8Array.from({ length: 2 * 4 * 4 * 3 }, () => rng.integer(0, 256)),
    count: 2,
    height: 4,
    width: 4,
  };
  const x = tf.tidy(() => tf.div(tf.tensor4d(Float32Array.from(img.data), [2, 4, 4, 3]), 255)) as tf.Tensor4D;
  const z = tf.tidy(() => tf.reshape(vq.encoderForward(x), [8, 3]));
  const book = vq.params.get('quantizer.embedding.weight')?.arraySync() as number[][];
  const zs = z.arraySync() as number[][];
  const ids = Array.from(tidyValues<'int32'>(() => vq.quantise(z as tf.Tensor2D)));
  zs.forEach((row, i) => {
    const d = book.map((c) => c.reduce((s, v, j) => s + (v - (row[j] as number)) ** 2, 0));
    assert.equal(ids[i], d.indexOf(Math.min(...d)));
  });
  const ids0 = vq.encode(img).join();
  const total = () => {
    assert.equal(vq.encode(img).join(), ids0, 'a perturbation changed a code assignment');
    return vq.losses(x).total;
  };
  // decoder: z and the assignments do not depend on it, so its gradient is the true one
  const n = gradCheck(vq.params, total, rng, (name) => !name.startsWith('decoder.'));
  assert.ok(n > 10);
  // codebook: the straight-through path gives it no gradient from the reconstruction, only from ‖sg(z) − e‖²
  const codebook = new Map([
    ['quantizer.embedding.weight', vq.params.get('quantizer.embedding.weight') as tf.Variable],
  ]);
  const zFixed = tf.tidy(() => tf.reshape(vq.encoderForward(x), [8, 3]));
  gradCheck(
    codebook,
    total,
    rng,
    () => false,
    () => {
      const zq = tf.gather(vq.params.get('quantizer.embedding.weight') as tf.Tensor, ids);
      return tf.mean(tf.squaredDifference(zFixed, zq)) as tf.Scalar;
    },
  );
  zFixed.dispose();
  tf.dispose([x, z]);
  vq.dispose();
});

test('VQGAN: encoder gradients are the straight-through ones, i.e. the true gradient of rec(dec(z + c)) + β‖z − e‖² with c = e − z held fixed', () => {
  const { rng, vq } = spreadVqGan(16);
  const x = tf.tensor4d(rng.fillUniform(new Float32Array(2 * 4 * 4 * 3)), [2, 4, 4, 3]);
  const [e0, c0] = tf.tidy(() => {
    const z = tf.reshape(vq.encoderForward(x), [8, 3]) as tf.Tensor2D;
    const e = tf.gather(vq.params.get('quantizer.embedding.weight') as tf.Tensor, vq.quantise(z));
    return [tf.keep(e), tf.keep(tf.sub(e, z))];
  }) as [tf.Tensor2D, tf.Tensor2D];
  const surrogate = () => {
    const z = tf.reshape(vq.encoderForward(x), [8, 3]);
    const rec = tf.mean(
      tf.squaredDifference(vq.decoderForward(tf.reshape(tf.add(z, c0), [2, 2, 2, 3]) as tf.Tensor4D), x),
    );
    return tf.add(rec, tf.mul(tf.mean(tf.squaredDifference(z, e0)), smallVq.beta)) as tf.Scalar;
  };
  const encoder = new Map([...vq.params].filter(([name]) => name.startsWith('encoder.')));
  const ours = lossAndGrads(encoder, () => vq.losses(x).total).grads;
  const ref = lossAndGrads(encoder, surrogate).grads;
  for (const name of encoder.keys()) {
    const err = tf.tidy(
      () =>
        tf
          .max(tf.abs(tf.sub(ours.get(name) as tf.Tensor, ref.get(name) as tf.Tensor)))
          .dataSync()[0] as number,
    );
    assert.ok(err < 1e-5, `${name}: ${err}`);
  }
  gradCheck(encoder, surrogate, rng);
  tf.dispose([x, e0, c0, ...ours.values(), ...ref.values()]);
  vq.dispose();
});

test('dropout masks: seeded, values 0 or 1/(1 − rate), dropped fraction within 4 standard errors of the rate', () => {
  for (const rate of [0.01, 0.3]) {
    const n = 200_000;
    const a = dropoutMask<tf.Rank.R1>([n], rate, new Rng(23)).dataSync();
    assert.deepEqual(dropoutMask<tf.Rank.R1>([n], rate, new Rng(23)).dataSync(), a);
    const dropped = a.filter((v) => v === 0).length;
    assert.ok(a.every((v) => v === 0 || Math.abs(v - 1 / (1 - rate)) < 1e-6));
    assert.ok(
      Math.abs(dropped / n - rate) < 4 * Math.sqrt((rate * (1 - rate)) / n),
      `rate ${rate}: ${dropped / n}`,
    );
  }
});

test('stopGradient passes values and blocks gradients; voxel dropout zeroes ⌊rate·K⌋ distinct voxels per row', () => {
  const x = tf.tensor1d([1, 2, 3]);
  const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(stopGradient(v), v)))(x);
  assert.deepEqual(Array.from(g.dataSync()), [1, 2, 3]);
  tf.dispose([x, g]);
  const rows = new Float32Array(4 * 10).fill(1);
  dropVoxels(rows, 4, 10, 0.25, new Rng(17));
  for (let r = 0; r < 4; r++)
    assert.equal(rows.subarray(r * 10, r * 10 + 10).filter((v) => v === 0).length, 2);
});

test('patch tokenizer: k-means error falls, encode picks the nearest code, decode lays the code patches back', () => {
  const rng = new Rng(18);
  const img = {
    data: Uint8Array.from({ length: 20 * 8 * 8 * 3 }, () => rng.integer(0, 4) * 64),
    count: 20,
    height: 8,
    width: 8,
  };
  const { tokenizer, history } = fitPatchTokenizer(
    img,
    { patchSize: 4, codes: 6, iterations: 8 },
    new Rng(19),
  );
  assert.equal(history.length, 9);
  for (let i = 1; i < history.length; i++)
    assert.ok((history[i] as number) <= (history[i - 1] as number) + 1e-12, `k-means error rose at ${i}`);
  const ids = tokenizer.encode(img);
  assert.equal(ids.length, 20 * 4);
  assert.deepEqual(ids, nearestCodes(extractPatches(img, 4), tokenizer.codebook, 48).ids);
  const out = tokenizer.decode(ids, 20, 8, 8);
  // patch (row 1, col 0) of image 3 is code ids[3·4 + 2]
  const code = ids[14] as number;
  for (let y = 0; y < 4; y++) {
    for (let i = 0; i < 12; i++)
      assert.equal(out[(3 * 8 + 4 + y) * 8 * 3 + i], tokenizer.codebook[code * 48 + y * 12 + i]);
  }
});

test('random-ReLU image features: seeded, unit length, changed by a flip', async () => {
  const rng = new Rng(20);
  const img = {
    data: Uint8Array.from({ length: 3 * 16 * 16 * 3 }, () => rng.integer(0, 256)),
    count: 3,
    height: 16,
    width: 16,
  };
  const a = new RandomReluFeatures(32, 64, 16, 16, 7);
  const b = new RandomReluFeatures(32, 64, 16, 16, 7);
  const fa = await a.extract(img);
  assert.deepEqual(fa, await b.extract(img));
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(Math.hypot(...fa.subarray(i * 32, i * 32 + 32)) - 1) < 1e-5);
  const flipped = flipHorizontal(img);
  assert.deepEqual(flipHorizontal(flipped).data, img.data);
  assert.notDeepEqual(await a.extract(flipped), fa);
  a.dispose();
  b.dispose();
});
