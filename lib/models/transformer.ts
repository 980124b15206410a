/**
 * Pre-LN transformer encoder (timm/ViT `Block` layout, as in LEA's fMRI encoder; spec §2.1):
 *   x = x + proj(attn(LN1(x)));  x = x + fc2(GELU(fc1(LN2(x))));  then a final LN.
 *
 * Parameters are plain tf.Variables in a Map keyed by timm's names (`blocks.3.attn.qkv.weight`), so they
 * can be saved to and loaded from safetensors by name. Linear weights are stored [in, out] (y = x @ W);
 * PyTorch checkpoints store [out, in], so a weight is transposed when crossing that boundary.
 *
 * The block itself, and its final layer norm, are fused ops (fused/encoder-block.ts): a hand-written backward
 * that still pays when the step is compiled, beside the plain block tfjs differentiates.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../compute/rng.js';
import { OP_SETS, type BlockParams, type OpSet } from './fused/index.js';
import { weightBias, type Params } from './layers.js';

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

/** Per-block parameter suffixes and shapes, in creation order. */
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

/** Block i's parameters by timm's names. */
function blockParams(params: Params, prefix: string): BlockParams {
  const wb = (name: string) => weightBias(params, prefix + name);
  return {
    norm1: wb('norm1'),
    attn: { qkv: wb('attn.qkv'), proj: wb('attn.proj') },
    norm2: wb('norm2'),
    mlp: { fc1: wb('mlp.fc1'), fc2: wb('mlp.fc2') },
  };
}

/** Runs the encoder: x [B, T, D] -> [B, T, D]. Differentiable with respect to x and every parameter. */
export function encoderForward(
  params: Params,
  cfg: EncoderConfig,
  x: tf.Tensor3D,
  prefix = '',
  ops: OpSet = OP_SETS.fused,
): tf.Tensor3D {
  const [batch, t, d] = x.shape;
  const shape = { batch, heads: cfg.heads, eps: cfg.eps };
  let h = tf.reshape(x, [batch * t, d]) as tf.Tensor2D; // rows [B·T, D]
  for (let i = 0; i < cfg.depth; i++)
    h = ops.preLnBlock(h, blockParams(params, `${prefix}blocks.${i}.`), shape);
  h = ops.layerNorm(h, weightBias(params, `${prefix}norm`), cfg.eps);
  return tf.reshape(h, [batch, t, d]);
}
