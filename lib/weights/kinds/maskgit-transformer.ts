/**
 * MaskGIT's ImageNet class-conditional transformer (`maskgit_imagenet256_checkpoint`): flax.serialization
 * msgpack of {'params': tree}, the tree of google-research/maskgit nets/maskgit_transformer.py Transformer
 * (compact auto-names Embed_0, TransformerLayer_{i}, MlmLayer_0; explicit names inside). Mapped onto LEA's
 * MaskGit (lib/models/maskgit.ts):
 *
 *   Embed_0/word_embeddings/embedding [rows, D]       → token_emb.weight
 *   Embed_0/position_embeddings/embedding [L+1, D]    → de_pos_emb.weight
 *   Embed_0/embeddings_ln/{scale,bias}                → ln.{weight,bias}
 *   TransformerLayer_{i}/Attention_0/self_attention/{query,key,value}/kernel [D, H, hd], bias [H, hd]
 *                                                     → decoder.{i}.self_attn.{query,key,value} [D, D], [D]
 *   TransformerLayer_{i}/Attention_0/self_attention/out/kernel [H, hd, D], bias [D] → decoder.{i}.self_attn.proj
 *   TransformerLayer_{i}/Attention_0/attention_output_ln → decoder.{i}.norm1
 *   TransformerLayer_{i}/Mlp_0/intermediate_output [D, F] → decoder.{i}.linear1
 *   TransformerLayer_{i}/Mlp_0/layer_output [F, D]     → decoder.{i}.linear2
 *   TransformerLayer_{i}/Mlp_0/layer_output_ln         → decoder.{i}.norm2
 *   MlmLayer_0/mlm_dense [D, D], mlm_ln, mlm_bias/bias [rows] → mlps.0, mlps.2, mlps_bias
 * Flax Dense kernels are [in, out], the project's layout; the attention kernels only merge their head axes,
 * head-major (column h·hd + d), which is how MaskGit splits heads. Embedding rows are codes, the 1000 ImageNet
 * class slots and the mask token: MaskGIT's mask id −1 indexes the last row (jnp.take wraps), LEA's mask id
 * codes + 1000. Position 0, MaskGIT's class token, holds LEA's CLIP conditioning.
 *
 * Not in the file: LEA's decoder_embed (CLIP 1024 → D), which is new in LEA; loadImportedTransformer keeps the model's own.
 */
import { BadInputError } from '../../errors.js';
import { transferByNameAndShape } from '../../models/layers.js';
import type { MaskGit, MaskGitConfig } from '../../models/maskgit.js';
import { MASKGIT_NUMERIC_VALUES, describeMaskGitNumerics } from '../../models/maskgit-numerics.js';
import type { NdArray } from '../../tensors/ndarray.js';
import type { ImportedNetwork, ImportOptions, WeightKind } from '../kind.js';
import type { CheckpointSource } from '../source.js';
import { TensorTaker, dim } from '../take.js';
import { takeFlaxTable, type FlaxTensor } from './maskgit-tokenizer.js';

/** The ImageNet class slots between the codes and the mask token (the file does not say how many). */
const CLASS_SLOTS = 1000;
/** LEA's CLIP ViT-H/14 embedding width, decoder_embed's input. */
const FEATURE_DIM = 1024;

/** The Flax tensors of a MaskGIT transformer of this size, in MaskGit's parameter order (decoder_embed aside). */
export function transformerTable(cfg: MaskGitConfig): FlaxTensor[] {
  const { width: d, heads, mlpHidden: f, depth, length } = cfg;
  const hd = d / heads;
  const rows = cfg.codes + cfg.classSlots + 1;
  const table: FlaxTensor[] = [];
  const add = (flax: string, name: string, stored: number[], shape = stored): void => {
    table.push({ flax: `params/${flax}`, stored, name, shape });
  };
  const dense = (flax: string, name: string, din: number, dout: number): void => {
    add(`${flax}/kernel`, `${name}.weight`, [din, dout]);
    add(`${flax}/bias`, `${name}.bias`, [dout]);
  };
  const norm = (flax: string, name: string): void => {
    add(`${flax}/scale`, `${name}.weight`, [d]);
    add(`${flax}/bias`, `${name}.bias`, [d]);
  };
  add('Embed_0/word_embeddings/embedding', 'token_emb.weight', [rows, d]);
  add('Embed_0/position_embeddings/embedding', 'de_pos_emb.weight', [length + 1, d]);
  norm('Embed_0/embeddings_ln', 'ln');
  for (let i = 0; i < depth; i++) {
    const layer = `TransformerLayer_${i}`;
    const attn = `${layer}/Attention_0/self_attention`;
    const name = `decoder.${i}`;
    for (const part of ['key', 'query', 'value']) {
      add(`${attn}/${part}/kernel`, `${name}.self_attn.${part}.weight`, [d, heads, hd], [d, d]);
      add(`${attn}/${part}/bias`, `${name}.self_attn.${part}.bias`, [heads, hd], [d]);
    }
    add(`${attn}/out/kernel`, `${name}.self_attn.proj.weight`, [heads, hd, d], [d, d]);
    add(`${attn}/out/bias`, `${name}.self_attn.proj.bias`, [d]);
    dense(`${layer}/Mlp_0/intermediate_output`, `${name}.linear1`, d, f);
    dense(`${layer}/Mlp_0/layer_output`, `${name}.linear2`, f, d);
    norm(`${layer}/Attention_0/attention_output_ln`, `${name}.norm1`);
    norm(`${layer}/Mlp_0/layer_output_ln`, `${name}.norm2`);
  }
  dense('MlmLayer_0/mlm_dense', 'mlps.0', d, d);
  norm('MlmLayer_0/mlm_ln', 'mlps.2');
  add('MlmLayer_0/mlm_bias/bias', 'mlps_bias', [rows]);
  return table;
}

/** The architecture implied by the shapes; LEA's training settings fill the rest of MaskGitConfig. */
export function transformerConfig(t: TensorTaker, opts: ImportOptions): MaskGitConfig {
  const path = t.src.path;
  const words = 'params/Embed_0/word_embeddings/embedding';
  if (!t.has(words)) throw new BadInputError(`${path}: no '${words}': not a MaskGIT transformer checkpoint`);
  const rows = dim(t, words, 0, 2);
  const width = dim(t, words, 1, 2);
  const query = 'params/TransformerLayer_0/Attention_0/self_attention/query/kernel';
  const heads = dim(t, query, 1, 3);
  if (opts.heads !== undefined && opts.heads !== heads) {
    throw new BadInputError(`${path}: tensor '${query}' stores ${heads} heads, --heads says ${opts.heads}`);
  }
  if (heads * dim(t, query, 2, 3) !== width) {
    throw new BadInputError(
      `${path}: tensor '${query}' has shape [${t.shape(query).join(', ')}]: heads × head width is not ${width}`,
    );
  }
  const codes = rows - CLASS_SLOTS - 1;
  if (codes < 1) {
    throw new BadInputError(
      `${path}: tensor '${words}' has ${rows} rows, too few for codes + ${CLASS_SLOTS} class slots + mask`,
    );
  }
  return {
    codes,
    classSlots: CLASS_SLOTS,
    length: dim(t, 'params/Embed_0/position_embeddings/embedding', 0, 2) - 1,
    featureDim: FEATURE_DIM,
    width,
    depth: t.count('params/TransformerLayer_', '/Mlp_0/layer_output/kernel'),
    heads,
    mlpHidden: dim(t, 'params/TransformerLayer_0/Mlp_0/intermediate_output/kernel', 1, 2),
    // LEA's stage-2 training settings (spec §2.5), not MaskGIT's (dropout 0.1)
    dropout: 0.01,
    minMaskRate: 0.5,
    labelSmoothing: 0.1,
    numerics: opts.numerics ?? 'lea-port',
  };
}

async function importTransformer(src: CheckpointSource, opts: ImportOptions): Promise<ImportedNetwork> {
  const t = new TensorTaker(src);
  const config = transformerConfig(t, opts);
  const { tensors, unused } = await takeFlaxTable(t, transformerTable(config));
  return {
    tensors,
    config: { ...config },
    unused,
    notes: {
      heads: 'from the attention kernels',
      decoderEmbed: `not in the file: LEA's decoder_embed (CLIP ${FEATURE_DIM} → ${config.width}) is new and trained in stage 2`,
      classSlots: `${CLASS_SLOTS} ImageNet class slots assumed between the codes and the mask token`,
      maskId: `${config.codes + CLASS_SLOTS} (MaskGIT's −1, the last embedding row)`,
      numerics: describeMaskGitNumerics(config.numerics),
      embeddingLayerNormEps: MASKGIT_NUMERIC_VALUES[config.numerics].embedLayerNormEps,
      blockLayerNormEps: 1e-12,
      gelu: MASKGIT_NUMERIC_VALUES[config.numerics].gelu,
    },
  };
}

/**
 * MaskGIT fine-tuned from ImageNet (spec §2.5): every tensor of the imported transformer goes into `model` by
 * name and shape; only decoder_embed (CLIP → width, new in LEA) keeps the model's own. Anything else that does
 * not load is an error naming the weights. Returns a one-line report.
 */
export function loadImportedTransformer(
  model: MaskGit,
  tensors: ReadonlyMap<string, NdArray>,
  name: string,
): string {
  const report = transferByNameAndShape(model.params, new Map(tensors));
  const missing = report.notLoaded.filter((n) => !n.name.startsWith('decoder_embed.'));
  if (missing.length || report.unused.length) {
    throw new BadInputError(
      `models.maskgit.initFrom: weights '${name}' do not fit the config's MaskGIT: ` +
        [...missing.map((n) => `${n.name} (${n.reason})`), ...report.unused.map((n) => `${n} unused`)].join(
          ', ',
        ),
    );
  }
  return `initialised ${report.loaded.length} tensors from '${name}'; decoder_embed is new`;
}

export const maskgitTransformerKind: WeightKind = {
  name: 'maskgit-transformer',
  description:
    "MaskGIT's ImageNet-256 class-conditional transformer (maskgit_imagenet256_checkpoint, Flax msgpack)",
  formats: ['flax-msgpack'],
  options: ['heads', 'numerics'],
  // 2: the config names its numerics (--numerics)
  mappingVersion: 2,
  importFrom: importTransformer,
  fullSize: {
    codes: 1024,
    classSlots: 1000,
    length: 256,
    width: 768,
    depth: 24,
    heads: 16,
    mlpHidden: 3072,
  },
};
