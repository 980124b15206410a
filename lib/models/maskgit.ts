/**
 * LEA's MaskGIT transformer (spec §2.5; naiq/LEA src/transformer_layers.py MaskGIT_Image2RGB and
 * SelfAttention): image tokens conditioned on an image-feature vector. Names follow the PyTorch module.
 *
 *   feature [B, F] → decoder_embed Linear(F→D) [B, 1, D]      ids [B, L] → token_emb [B, L, D]
 *   concat [B, L+1, D] + de_pos_emb (learned) → LN (eps per `numerics`: 1e-5 LEA, 1e-12 MaskGIT) → dropout
 *   post-LN blocks: h = LN(h + drop(MHA(h))); h = LN(h + drop(linear2(GELU(linear1(h))))) (eps 1e-12), with
 *   separate biased query/key/value/proj and dropout on the attention weights
 *   head: mlps = Linear(D→D) → GELU → LN (eps 1e-12); logits = head · token_embᵀ + mlps_bias
 *   keep positions 1..L and the first `codes` columns → [B, L, codes]
 * The embedding table has codes + classSlots + 1 rows (ImageNet's 1000 class slots, unused, and the mask id
 * codes + classSlots, 2024 at paper size). GELU is exact (LEA) or the tanh form (MaskGIT), per `numerics`.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../compute/rng.js';
import { CompiledForward } from '../compute/compiled-forward.js';
import { tidyValues } from '../compute/values.js';
import {
  ParamBuilder,
  disposeParams,
  dropoutMask,
  gelu,
  layerNorm,
  linear,
  param,
  sampleWithoutReplacement,
  type Params,
} from './layers.js';
import {
  MASKGIT_NUMERIC_VALUES,
  type MaskGitNumerics,
  type MaskGitNumericValues,
} from './maskgit-numerics.js';

export interface MaskGitConfig {
  /** Tokenizer codebook size (1024). */
  codes: number;
  /** Unused class slots between the codes and the mask id (1000 in the paper, 0 in the miniature). */
  classSlots: number;
  /** Tokens per image (256). */
  length: number;
  /** Conditioning feature width (1024). */
  featureDim: number;
  width: number;
  depth: number;
  heads: number;
  mlpHidden: number;
  dropout: number;
  /** Lower bound of the training mask ratio (0.5). */
  minMaskRate: number;
  labelSmoothing: number;
  /** The embedding LayerNorm's epsilon and the GELU form (lib/models/maskgit-numerics.ts). */
  numerics: MaskGitNumerics;
}

const BLOCK_EPS = 1e-12;

/** A training pass's dropout masks (MaskGit.drawDropout), already scaled by 1/(1 − rate). */
export interface MaskGitDropout {
  /** On the embedding's layer norm [B·T, D]. */
  embed: tf.Tensor2D;
  blocks: BlockMasks[];
}

/** What one training step reads (MaskGit.drawStep): the masked input and the targets, all [B·L], and features. */
export interface MaskGitStep {
  input: tf.Tensor1D;
  target: tf.Tensor1D;
  /** 1 at the masked positions, where the loss is taken; 0 elsewhere. */
  weight: tf.Tensor1D;
  features: tf.Tensor2D;
  dropout?: MaskGitDropout;
}

/** A block's dropout masks, already scaled by 1/(1 − rate); absent at inference. */
interface BlockMasks {
  /** On the attention weights [B, H, T, T]. */
  att?: tf.Tensor4D;
  /** On the attention branch [B·T, D]. */
  attn?: tf.Tensor2D;
  /** On the MLP branch [B·T, D]. */
  mlp?: tf.Tensor2D;
}

/** x ⊙ mask in training; x itself at inference. */
const dropped = <R extends tf.Rank>(x: tf.Tensor<R>, mask?: tf.Tensor<R>): tf.Tensor<R> =>
  mask ? tf.mul(x, mask) : x;

/** MaskGIT's cosine schedule: the fraction of tokens masked at u ∈ [0, 1] (training draws u, decoding steps it). */
export const maskRatio = (u: number): number => Math.cos((Math.PI / 2) * u);

export class MaskGit {
  readonly params: Params;
  /** The inference logits as a compiled function (made on first use). */
  private inference?: CompiledForward;

  constructor(
    readonly cfg: MaskGitConfig,
    rng: Rng,
  ) {
    const { width: d, mlpHidden: f } = cfg;
    if (d % cfg.heads !== 0) throw new RangeError(`width ${d} does not divide by ${cfg.heads} heads`);
    const b = new ParamBuilder(rng);
    // weights_init: Linear and Embedding weights trunc_normal(0, 0.02), biases 0, LayerNorm 1/0
    const lin = (name: string, din: number, dout: number): void => {
      b.truncNormal(`${name}.weight`, [din, dout], 0.02);
      b.zeros(`${name}.bias`, [dout]);
    };
    const norm = (name: string): void => {
      b.ones(`${name}.weight`, [d]);
      b.zeros(`${name}.bias`, [d]);
    };
    lin('decoder_embed', cfg.featureDim, d);
    b.truncNormal('token_emb.weight', [this.rows, d], 0.02);
    b.truncNormal('de_pos_emb.weight', [cfg.length + 1, d], 0.02);
    norm('ln');
    for (let i = 0; i < cfg.depth; i++) {
      for (const part of ['key', 'query', 'value', 'proj']) lin(`decoder.${i}.self_attn.${part}`, d, d);
      lin(`decoder.${i}.linear1`, d, f);
      lin(`decoder.${i}.linear2`, f, d);
      norm(`decoder.${i}.norm1`);
      norm(`decoder.${i}.norm2`);
    }
    lin('mlps.0', d, d);
    norm('mlps.2');
    b.zeros('mlps_bias', [this.rows]);
    this.params = b.params;
  }

  /** Rows of the embedding table: codes, class slots, mask id. */
  get rows(): number {
    return this.cfg.codes + this.cfg.classSlots + 1;
  }

  get maskId(): number {
    return this.cfg.codes + this.cfg.classSlots;
  }

  private p(name: string): tf.Tensor {
    return param(this.params, name);
  }

  private get numerics(): MaskGitNumericValues {
    return MASKGIT_NUMERIC_VALUES[this.cfg.numerics];
  }

  /**
   * One post-LN BERT block (the authors' SelfAttention) over h [B·T, D], with its dropout masks in training:
   * y = LN(h + drop(MHA(h))); out = LN(y + drop(linear2(GELU(linear1(y))))).
   */
  private block(h: tf.Tensor2D, i: number, batch: number, drop: BlockMasks): tf.Tensor2D {
    const p = (name: string) => this.p(`decoder.${i}.${name}`);
    const lin = (x: tf.Tensor, name: string) => linear(x, p(`${name}.weight`), p(`${name}.bias`));
    const [n, d] = h.shape;
    const { heads } = this.cfg;
    const [t, hd] = [n / batch, d / heads];
    const split = (name: string) =>
      tf.transpose(tf.reshape(lin(h, `self_attn.${name}`), [batch, t, heads, hd]), [0, 2, 1, 3]); // [B, H, T, hd]
    const scores = tf.mul(tf.matMul(split('query'), split('key'), false, true), 1 / Math.sqrt(hd)); // [B, H, T, T]
    const att = dropped(tf.softmax(scores), drop.att);
    const o = tf.reshape(tf.transpose(tf.matMul(att, split('value')), [0, 2, 1, 3]), [n, d]); // [B·T, D]
    const y = this.norm(tf.add(h, dropped(lin(o, 'self_attn.proj'), drop.attn)), `decoder.${i}.norm1`);
    const m = lin(this.gelu(lin(y, 'linear1')), 'linear2');
    return this.norm(tf.add(y, dropped(m, drop.mlp)), `decoder.${i}.norm2`);
  }

  private norm(x: tf.Tensor, name: string, eps = BLOCK_EPS): tf.Tensor2D {
    return layerNorm(x, this.p(`${name}.weight`), this.p(`${name}.bias`), eps) as tf.Tensor2D;
  }

  private gelu(x: tf.Tensor): tf.Tensor {
    return gelu(x, this.numerics.gelu);
  }

  /**
   * Every dropout mask of one training pass, drawn from `rng` in the order the layers apply them: the
   * embedding's, then per block the attention weights', the attention branch's and the MLP branch's. None when
   * the rate is 0.
   */
  drawDropout(batch: number, rng: Rng): MaskGitDropout | undefined {
    const { width: d, heads, dropout: rate, length: l } = this.cfg;
    if (rate <= 0) return undefined;
    const t = l + 1;
    const embed = dropoutMask<tf.Rank.R2>([batch * t, d], rate, rng);
    const blocks = Array.from({ length: this.cfg.depth }, () => ({
      att: dropoutMask<tf.Rank.R4>([batch, heads, t, t], rate, rng),
      attn: dropoutMask<tf.Rank.R2>([batch * t, d], rate, rng),
      mlp: dropoutMask<tf.Rank.R2>([batch * t, d], rate, rng),
    }));
    return { embed, blocks };
  }

  /** Transformer body: ids [B·L] (int32), features [B, F] → hidden states [B·(L+1), D]; masks in training. */
  hidden(ids: tf.Tensor1D, features: tf.Tensor2D, dropout?: MaskGitDropout): tf.Tensor2D {
    const { width: d, length: l } = this.cfg;
    const [b] = features.shape;
    const c = tf.reshape(linear(features, this.p('decoder_embed.weight'), this.p('decoder_embed.bias')), [
      b,
      1,
      d,
    ]);
    const z = tf.reshape(tf.gather(this.p('token_emb.weight'), ids), [b, l, d]);
    const seq = tf.reshape(tf.add(tf.concat([c, z], 1), this.p('de_pos_emb.weight')), [b * (l + 1), d]);
    let h = dropped(this.norm(seq, 'ln', this.numerics.embedLayerNormEps), dropout?.embed);
    for (let i = 0; i < this.cfg.depth; i++) h = this.block(h, i, b, dropout?.blocks[i] ?? {});
    return h;
  }

  /** Tied-embedding head on rows of hidden states [M, D] → logits over the codes [M, codes]. */
  head(h: tf.Tensor2D): tf.Tensor2D {
    const { codes, width: d } = this.cfg;
    const e = this.norm(this.gelu(linear(h, this.p('mlps.0.weight'), this.p('mlps.0.bias'))), 'mlps.2');
    const table = tf.slice(this.p('token_emb.weight'), [0, 0], [codes, d]);
    return tf.add(
      tf.matMul(e as tf.Tensor2D, table as tf.Tensor2D, false, true),
      tf.slice(this.p('mlps_bias'), [0], [codes]),
    );
  }

  /** Inference logits [B·L·codes] (no dropout) for token ids [B·L] and features [B, F]; compiled per batch size. */
  logits(ids: Int32Array, features: Float32Array, batch: number): Float32Array {
    this.inference ??= new CompiledForward(
      [...this.params.values()],
      ([i, f]) => [this.logitsOf(i as tf.Tensor1D, f as tf.Tensor2D)],
      'MaskGIT logits',
    );
    const forward = this.inference;
    const { featureDim } = this.cfg;
    return tidyValues(
      () =>
        forward.run([tf.tensor1d(ids, 'int32'), tf.tensor2d(features, [batch, featureDim])])[0] as tf.Tensor,
    );
  }

  /** ids [B·L], features [B, F] → logits [B·L, codes], the CLS slot dropped. */
  private logitsOf(ids: tf.Tensor1D, features: tf.Tensor2D): tf.Tensor2D {
    const { length: l, width: d } = this.cfg;
    const [b] = features.shape;
    const h = tf.reshape(this.hidden(ids, features), [b, l + 1, d]);
    return this.head(tf.reshape(tf.slice(h, [0, 1, 0], [b, l, d]), [b * l, d]) as tf.Tensor2D);
  }

  /**
   * The training masking of MaskGIT_Image2RGB.forward: one ratio per batch, r = max(cos(πu/2), minMaskRate),
   * u ~ U(0, 1); ⌊r·L⌋ positions per sample, uniformly without replacement. Returns the masked input ids and
   * the flat positions (b·L + i) that were masked.
   */
  maskTokens(tokens: Int32Array, batch: number, rng: Rng): { input: Int32Array; masked: Int32Array } {
    const l = this.cfg.length;
    const r = Math.max(maskRatio(rng.uniform()), this.cfg.minMaskRate);
    const count = Math.floor(r * l);
    const input = Int32Array.from(tokens);
    const masked = new Int32Array(batch * count);
    const scratch = new Int32Array(l);
    for (let s = 0; s < batch; s++) {
      const chosen = sampleWithoutReplacement(rng, l, count, scratch).sort();
      chosen.forEach((pos, j) => {
        input[s * l + pos] = this.maskId;
        masked[s * count + j] = s * l + pos;
      });
    }
    return { input, masked };
  }

  /**
   * A training step's host part: maskTokens' masking, then the dropout masks (rng's next draws in that order),
   * with the batch's tokens [B·L] and features [B·F], uploaded.
   */
  drawStep(tokens: Int32Array, features: Float32Array, batch: number, rng: Rng): MaskGitStep {
    const { input, masked } = this.maskTokens(tokens, batch, rng);
    const dropout = this.drawDropout(batch, rng);
    return { ...this.stepInputs(input, masked, tokens, features, batch), ...(dropout ? { dropout } : {}) };
  }

  /** A masking's step inputs without dropout: what a reference implementation can reproduce exactly. */
  stepInputs(
    input: Int32Array,
    masked: Int32Array,
    tokens: Int32Array,
    features: Float32Array,
    batch: number,
  ): MaskGitStep {
    const weight = new Float32Array(tokens.length);
    for (const m of masked) weight[m] = 1;
    return {
      input: tf.tensor1d(input, 'int32'),
      target: tf.tensor1d(tokens, 'int32'),
      weight: tf.tensor1d(weight),
      features: tf.tensor2d(features, [batch, this.cfg.featureDim]),
    };
  }

  /**
   * A training step's tensor part: cross-entropy with label smoothing ε over the codes, i.e. against
   * (1 − ε)·onehot + ε/codes, averaged over the masked positions of the batch (`loss_all: False`). Every position
   * goes through the head and the weights pick the masked ones, so the shapes do not depend on the drawn mask
   * ratio (one compiled program for every step).
   */
  stepLoss(s: MaskGitStep): tf.Scalar {
    const { length: l, codes, width: d, labelSmoothing: eps } = this.cfg;
    const [b] = s.features.shape;
    const h = tf.reshape(this.hidden(s.input, s.features, s.dropout), [b, l + 1, d]);
    const rows = tf.reshape(tf.slice(h, [0, 1, 0], [b, l, d]), [b * l, d]); // the tokens' rows, [B·L, D]
    const logp = tf.logSoftmax(this.head(rows as tf.Tensor2D));
    const target = tf.add(tf.mul(tf.oneHot(s.target, codes), 1 - eps), eps / codes);
    const nll = tf.neg(tf.sum(tf.mul(target, logp), 1)); // [B·L]
    return tf.div(tf.sum(tf.mul(nll, s.weight)), tf.sum(s.weight)) as tf.Scalar;
  }

  /** Training loss: drawStep's draws, then stepLoss. */
  loss(tokens: Int32Array, features: Float32Array, batch: number, rng: Rng): tf.Scalar {
    return this.stepLoss(this.drawStep(tokens, features, batch, rng));
  }

  dispose(): void {
    disposeParams(this.params);
  }
}
