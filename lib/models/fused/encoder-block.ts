/**
 * The pre-LN transformer block (timm's `Block`, LEA's and MinD-Vis's encoders; spec §2.1) and its layer norm,
 * each fused with a hand-written backward, beside the plain form tfjs differentiates itself:
 *   x = x + proj(attn(norm1(x)));  x = x + fc2(GELU(fc1(norm2(x))))
 * The fused block runs 42 kernels forward and 61 backward (plus 14 Identity calls that keep what the backward
 * reads), against ~55 and ~110 for the plain one; compiled with XLA, the MAE and autoencoder steps still run
 * 8-20 % slower with the plain block in all but one case measured (README, "Hand-written backwards, measured
 * compiled").
 */
import * as tf from '@tensorflow/tfjs';
import { gelu, layerNorm, linear, type WeightBias } from '../layers.js';
import { runFused } from './op.js';
import { c, geluBackward, geluForward, linearBackward, lnBackward, lnForward } from './pieces.js';

/** One block's parameters under timm's names (`blocks.{i}.attn.qkv.weight` → attn.qkv.weight). */
export interface BlockParams {
  norm1: WeightBias;
  attn: { qkv: WeightBias; proj: WeightBias };
  norm2: WeightBias;
  mlp: { fc1: WeightBias; fc2: WeightBias };
}

/** x holds `batch` sequences of equal length as rows [B·T, D]; width D divides by `heads`. */
export interface BlockShape {
  batch: number;
  heads: number;
  eps: number;
}

/** Attention's shapes: per-head width and the scale of q·kᵀ. */
function attentionShape(x: tf.Tensor2D, { batch, heads }: BlockShape) {
  const [n, d] = x.shape;
  const headDim = d / heads;
  return { n, d, t: n / batch, headDim, scale: 1 / Math.sqrt(headDim) };
}

/** The plain block, differentiated by tfjs: x [B·T, D] → [B·T, D]. */
export function preLnBlockPlain(x: tf.Tensor2D, p: BlockParams, shape: BlockShape): tf.Tensor2D {
  const { n, d, t, headDim, scale } = attentionShape(x, shape);
  const { batch, heads, eps } = shape;
  // qkv [N, 3D] → [B, T, 3, H, hd] → [3, B, H, T, hd] → q, k, v [B, H, T, hd]
  const h1 = layerNorm(x, p.norm1.weight, p.norm1.bias, eps);
  const qkv = tf.reshape(linear(h1, p.attn.qkv.weight, p.attn.qkv.bias), [batch, t, 3, heads, headDim]);
  const [q, k, v] = tf.unstack(tf.transpose(qkv, [2, 0, 3, 1, 4])) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
  const att = tf.softmax(tf.matMul(tf.mul(q, scale), k, false, true)); // [B, H, T, T]
  const o = tf.reshape(tf.transpose(tf.matMul(att, v), [0, 2, 1, 3]), [n, d]);
  const x2 = tf.add(x, linear(o, p.attn.proj.weight, p.attn.proj.bias));
  // MLP [N, D] → [N, F] → [N, D]
  const h2 = layerNorm(x2, p.norm2.weight, p.norm2.bias, eps);
  const u = gelu(linear(h2, p.mlp.fc1.weight, p.mlp.fc1.bias));
  return tf.add(x2, linear(u, p.mlp.fc2.weight, p.mlp.fc2.bias));
}

/** The same block as one op with a hand-written backward. The parameters must be variables (read unsaved). */
export function preLnBlock(x: tf.Tensor2D, p: BlockParams, shape: BlockShape): tf.Tensor2D {
  const { n, d, t, headDim, scale } = attentionShape(x, shape);
  const { batch, heads, eps } = shape;
  type Inputs = { x: tf.Tensor2D; p: BlockParams };
  const forward = ({ x, p }: Inputs) => {
    const ln1 = lnForward(x, p.norm1, eps);
    const qkv = tf.reshape(linear(ln1.y, p.attn.qkv.weight, p.attn.qkv.bias), [batch, t, 3, heads, headDim]);
    const [q, k, v] = tf.unstack(tf.transpose(qkv, [2, 0, 3, 1, 4])) as [
      tf.Tensor4D,
      tf.Tensor4D,
      tf.Tensor4D,
    ];
    const qs = tf.mul(q, c(scale));
    const att = tf.softmax(tf.matMul(qs, k, false, true)); // [B, H, T, T]
    const o = tf.reshape(tf.transpose(tf.matMul(att, v), [0, 2, 1, 3]), [n, d]);
    const x2 = tf.add(x, linear(o, p.attn.proj.weight, p.attn.proj.bias));
    const ln2 = lnForward(x2, p.norm2, eps);
    const u = linear(ln2.y, p.mlp.fc1.weight, p.mlp.fc1.bias);
    const act = geluForward(u);
    const value = tf.add(x2, linear(act.y, p.mlp.fc2.weight, p.mlp.fc2.bias));
    const saved = { h1: ln1.y, xhat1: ln1.xhat, rstd1: ln1.rstd, qs, k, v, att, o };
    return {
      value,
      saved: { ...saved, h2: ln2.y, xhat2: ln2.xhat, rstd2: ln2.rstd, u, cdf: act.cdf, a: act.y },
    };
  };
  type Saved = ReturnType<typeof forward>['saved'];
  const backward = (dy: tf.Tensor, s: Saved, { p }: Inputs) => {
    // MLP branch
    const fc2 = linearBackward(dy, s.a, p.mlp.fc2.weight);
    const fc1 = linearBackward(geluBackward(fc2.dx, s.u, s.cdf), s.h2, p.mlp.fc1.weight);
    const norm2 = lnBackward(fc1.dx, { xhat: s.xhat2, rstd: s.rstd2 }, p.norm2.weight);
    const dx2 = tf.add(dy, norm2.dx);
    // attention branch
    const proj = linearBackward(dx2, s.o, p.attn.proj.weight);
    const dO = tf.transpose(tf.reshape(proj.dx, [batch, t, heads, headDim]), [0, 2, 1, 3]);
    const dAtt = tf.matMul(dO, s.v, false, true);
    const dv = tf.matMul(s.att, dO, true, false);
    const ds = tf.mul(s.att, tf.sub(dAtt, tf.sum(tf.mul(dAtt, s.att), -1, true))); // softmax backward
    const dq = tf.mul(tf.matMul(ds, s.k), c(scale));
    const dk = tf.matMul(ds, s.qs, true, false);
    const dqkv = tf.reshape(tf.transpose(tf.stack([dq, dk, dv]), [1, 3, 0, 2, 4]), [n, 3 * d]);
    const qkv = linearBackward(dqkv, s.h1, p.attn.qkv.weight);
    const norm1 = lnBackward(qkv.dx, { xhat: s.xhat1, rstd: s.rstd1 }, p.norm1.weight);
    const wb = (g: { dw: tf.Tensor; db: tf.Tensor }) => ({ weight: g.dw, bias: g.db });
    const ln = (g: { dg: tf.Tensor; db: tf.Tensor }) => ({ weight: g.dg, bias: g.db });
    return {
      x: tf.add(dx2, norm1.dx),
      p: {
        norm1: ln(norm1),
        attn: { qkv: wb(qkv), proj: wb(proj) },
        norm2: ln(norm2),
        mlp: { fc1: wb(fc1), fc2: wb(fc2) },
      },
    };
  };
  return runFused({ x, p }, { forward, backward }) as tf.Tensor2D;
}

/** Layer norm over the last axis of x [N, D], plain. */
export function layerNormPlain(x: tf.Tensor2D, norm: WeightBias, eps: number): tf.Tensor2D {
  return layerNorm(x, norm.weight, norm.bias, eps) as tf.Tensor2D;
}

/** The same as one op with a hand-written backward (lnForward / lnBackward). */
export function layerNormFused(x: tf.Tensor2D, norm: WeightBias, eps: number): tf.Tensor2D {
  return runFused(
    { x, norm },
    {
      forward: ({ x, norm }) => {
        const ln = lnForward(x, norm, eps);
        return { value: ln.y, saved: { xhat: ln.xhat, rstd: ln.rstd } };
      },
      backward: (dy, s, { norm }) => {
        const r = lnBackward(dy, s, norm.weight);
        return { x: r.dx, norm: { weight: r.dg, bias: r.db } };
      },
    },
  ) as tf.Tensor2D;
}
