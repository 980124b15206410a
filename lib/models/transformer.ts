/**
 * Pre-LN transformer encoder (timm/ViT `Block` layout, as in LEA's fMRI encoder; spec §2.1):
 *   x = x + proj(attn(LN1(x)));  x = x + fc2(GELU(fc1(LN2(x))));  then a final LN.
 *
 * Parameters are plain tf.Variables in a Map keyed by timm's names (`blocks.3.attn.qkv.weight`), so they
 * can be saved to and loaded from safetensors by name. Linear weights are stored [in, out] (y = x @ W);
 * PyTorch checkpoints store [out, in], so a weight is transposed when crossing that boundary.
 *
 * Speed: on the native backend every op costs ~10 µs of dispatch, which dominates small models. Each
 * block is therefore one tf.customGrad with a hand-written backward (one qkv matmul, fused layer-norm,
 * softmax and GELU gradients, bias gradients as one einsum; layers.ts's pieces): 42 kernels forward and 61
 * backward per block, plus 14 Identity calls that keep the activations the backward reads, against ~55 and
 * ~110 when tfjs differentiates the same forward op by op.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../compute/rng.js';
import {
  c,
  geluBackward,
  geluForward,
  layerNormOp,
  linear,
  linearBackward,
  lnBackward,
  lnForward,
  type Params,
} from './layers.js';

export type { Params } from './types.js';

export interface EncoderConfig {
  depth: number;
  /** Model width D; must divide by heads. */
  width: number;
  heads: number;
  /** MLP hidden width = round(width * mlpRatio); LEA uses 1.0. */
  mlpRatio: number;
  /** Layer-norm epsilon (1e-5 in LEA's timm blocks). */
  eps: number;
}

/** The widths, depths and heads of an encoder-decoder pair (the MAE and the fMRI autoencoder). */
export interface EncoderDecoderShape {
  width: number;
  depth: number;
  heads: number;
  decoderWidth: number;
  decoderDepth: number;
  decoderHeads: number;
  mlpRatio: number;
  eps: number;
}

/** The two stacks' block configs; both use the same MLP ratio and layer-norm epsilon. */
export function encoderDecoderConfigs(s: EncoderDecoderShape): {
  encoder: EncoderConfig;
  decoder: EncoderConfig;
} {
  const { mlpRatio, eps } = s;
  return {
    encoder: { depth: s.depth, width: s.width, heads: s.heads, mlpRatio, eps },
    decoder: { depth: s.decoderDepth, width: s.decoderWidth, heads: s.decoderHeads, mlpRatio, eps },
  };
}

/** Per-block parameter suffixes and shapes, in the order the block function takes them. */
function blockShapes(cfg: EncoderConfig): [string, number[]][] {
  const d = cfg.width;
  const f = mlpHidden(cfg);
  return [
    ['norm1.weight', [d]],
    ['norm1.bias', [d]],
    ['attn.qkv.weight', [d, 3 * d]],
    ['attn.qkv.bias', [3 * d]],
    ['attn.proj.weight', [d, d]],
    ['attn.proj.bias', [d]],
    ['norm2.weight', [d]],
    ['norm2.bias', [d]],
    ['mlp.fc1.weight', [d, f]],
    ['mlp.fc1.bias', [f]],
    ['mlp.fc2.weight', [f, d]],
    ['mlp.fc2.bias', [d]],
  ];
}

function mlpHidden(cfg: EncoderConfig): number {
  return Math.round(cfg.width * cfg.mlpRatio);
}

/**
 * Creates the encoder's variables: Linear weights Xavier-uniform (MAE's init, qkv as one matrix),
 * biases 0, layer norms weight 1 / bias 0. `prefix` namespaces them inside a larger model ('' or 'encoder.').
 */
export function initEncoder(cfg: EncoderConfig, rng: Rng, prefix = ''): Params {
  if (cfg.width % cfg.heads !== 0)
    throw new RangeError(`width ${cfg.width} does not divide by ${cfg.heads} heads`);
  const params: Params = new Map();
  const add = (name: string, shape: number[], values: Float32Array): void => {
    const t = tf.tensor(values, shape);
    params.set(prefix + name, tf.variable(t, true));
    t.dispose();
  };
  for (let i = 0; i < cfg.depth; i++) {
    for (const [suffix, shape] of blockShapes(cfg)) {
      const size = shape.reduce((a, b) => a * b, 1);
      const values = new Float32Array(size);
      if (shape.length === 2) {
        const limit = Math.sqrt(6 / ((shape[0] as number) + (shape[1] as number)));
        rng.fillUniform(values, -limit, limit);
      } else if (suffix.endsWith('norm1.weight') || suffix.endsWith('norm2.weight')) {
        values.fill(1);
      }
      add(`blocks.${i}.${suffix}`, shape, values);
    }
  }
  add('norm.weight', [cfg.width], new Float32Array(cfg.width).fill(1));
  add('norm.bias', [cfg.width], new Float32Array(cfg.width));
  return params;
}

type T = tf.Tensor;
type BlockArgs = [x: tf.Tensor2D, T, T, T, T, T, T, T, T, T, T, T, T, save: tf.GradSaveFunc];
/** The activations a block's backward reads, in the order saved. */
type Saved = [T, T, T, tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, T, T, T, T, T, T, T];

/**
 * One pre-LN block as a single differentiable op. x: [N = B·T, D] with `batch` sequences of equal length.
 * Inputs after x follow blockShapes() and must be variables (the backward reads them as they are, unsaved); the
 * gradient function returns one gradient per input, same order.
 */
function makeBlock(cfg: EncoderConfig, batch: number) {
  const heads = cfg.heads;
  const headDim = cfg.width / heads;
  const scale = 1 / Math.sqrt(headDim);
  return tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x, g1, b1, wqkv, bqkv, wo, bo, g2, b2, w1, c1, w2, c2, save] = args as BlockArgs;
    const [n, d] = x.shape;
    const t = n / batch;

    // attention: qkv [N, 3D] -> [B, T, 3, H, hd] -> [3, B, H, T, hd] -> q, k, v [B, H, T, hd]
    const ln1 = lnForward(x, g1, b1, cfg.eps);
    const qkv = tf.reshape(linear(ln1.y, wqkv, bqkv), [batch, t, 3, heads, headDim]);
    const [q, k, v] = tf.unstack(tf.transpose(qkv, [2, 0, 3, 1, 4])) as [
      tf.Tensor4D,
      tf.Tensor4D,
      tf.Tensor4D,
    ];
    const qs = tf.mul(q, c(scale));
    const p = tf.softmax(tf.matMul(qs, k, false, true)); // [B, H, T, T]
    const o = tf.reshape(tf.transpose(tf.matMul(p, v), [0, 2, 1, 3]), [n, d]); // [N, D]
    const x2 = tf.add(x, linear(o, wo, bo));

    // MLP: [N, D] -> [N, F] -> [N, D]
    const ln2 = lnForward(x2, g2, b2, cfg.eps);
    const u = linear(ln2.y, w1, c1);
    const act = geluForward(u);
    const y = tf.add(x2, linear(act.y, w2, c2));

    // The parameters the backward reads are variables, alive through the backward, so they are read from
    // this closure: saving them would cost one kernel each.
    save([ln1.y, ln1.xhat, ln1.rstd, qs, k, v, p, o, ln2.y, ln2.xhat, ln2.rstd, u, act.cdf, act.y]);
    return {
      value: y,
      // tfjs runs gradFunc outside any scope: the tidy frees this block's temporaries now rather than
      // at the end of the whole backward pass (gigabytes at the paper's size).
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [h1, xhat1, rstd1, qsS, kS, vS, pS, oS, h2, xhat2, rstd2, uS, cdf, a] = saved as Saved;
          // MLP branch
          const fc2 = linearBackward(dy, a, w2);
          const du = geluBackward(fc2.dx, uS, cdf);
          const fc1 = linearBackward(du, h2, w1);
          const n2 = lnBackward(fc1.dx, xhat2, rstd2, g2);
          const dx2 = tf.add(dy, n2.dx);
          // attention branch
          const proj = linearBackward(dx2, oS, wo);
          const dO = tf.transpose(tf.reshape(proj.dx, [batch, t, heads, headDim]), [0, 2, 1, 3]);
          const dp = tf.matMul(dO, vS, false, true);
          const dv = tf.matMul(pS, dO, true, false);
          const ds = tf.mul(pS, tf.sub(dp, tf.sum(tf.mul(dp, pS), -1, true))); // softmax backward
          const dq = tf.mul(tf.matMul(ds, kS), c(scale));
          const dk = tf.matMul(ds, qsS, true, false);
          const dqkv = tf.reshape(tf.transpose(tf.stack([dq, dk, dv]), [1, 3, 0, 2, 4]), [n, 3 * d]);
          const qkvG = linearBackward(dqkv, h1, wqkv);
          const n1 = lnBackward(qkvG.dx, xhat1, rstd1, g1);
          const dx = tf.add(dx2, n1.dx);
          return [
            dx,
            n1.dg,
            n1.db,
            qkvG.dw,
            qkvG.db,
            proj.dw,
            proj.db,
            n2.dg,
            n2.db,
            fc1.dw,
            fc1.db,
            fc2.dw,
            fc2.db,
          ];
        }),
    };
  });
}

/** Runs the encoder: x [B, T, D] -> [B, T, D]. Differentiable with respect to x and every parameter. */
export function encoderForward(params: Params, cfg: EncoderConfig, x: tf.Tensor3D, prefix = ''): tf.Tensor3D {
  const [batch, t, d] = x.shape;
  const get = (name: string): tf.Variable => {
    const v = params.get(prefix + name);
    if (!v) throw new Error(`missing encoder parameter ${prefix + name}`);
    return v;
  };
  const block = makeBlock(cfg, batch);
  let h = tf.reshape(x, [batch * t, d]) as tf.Tensor2D;
  for (let i = 0; i < cfg.depth; i++) {
    const ps = blockShapes(cfg).map(([suffix]) => get(`blocks.${i}.${suffix}`));
    h = block(h, ...ps) as tf.Tensor2D;
  }
  h = layerNormOp(cfg.eps)(h, get('norm.weight'), get('norm.bias'));
  return tf.reshape(h, [batch, t, d]);
}
