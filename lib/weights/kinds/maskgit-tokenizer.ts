/**
 * MaskGIT's ImageNet VQGAN tokenizer (`tokenizer_imagenet256_checkpoint`): flax.serialization msgpack of
 * {'params': tree}, the tree of google-research/maskgit nets/vqgan_tokenizer.py VQVAE (setup() names
 * `encoder`, `decoder`, `quantizer`; inside them Flax's compact auto-names, counted per module type in call
 * order). Flax conv kernels are already [kh, kw, in, out] and GroupNorm `scale`/`bias` are [C], so the mapping
 * onto VqGan (lib/models/vq-tokenizer.ts) is names only.
 *
 *   encoder/Conv_0                3×3 3→ch, no bias                       → encoder.conv_in
 *   encoder/ResBlock_{i·nrb+j}    level i (of L), block j                  → encoder.down.{i}.block.{j}
 *   encoder/ResBlock_{L·nrb+j}    middle blocks (Flax loops num_res_blocks) → encoder.mid.{j}
 *   encoder/GroupNorm_0, Conv_1   GN, then 1×1 top→latent with bias       → encoder.norm_out, encoder.conv_out
 *   quantizer/codebook            [codes, latent]                          → quantizer.embedding.weight
 *   decoder/Conv_0                3×3 latent→top, bias                     → decoder.conv_in
 *   decoder/ResBlock_{j}          middle blocks                            → decoder.mid.{j}
 *   decoder/ResBlock_{nrb+i·nrb+j} level i from the top (reversed loop)    → decoder.up.{i}.block.{j}
 *   decoder/Conv_{1+i}            3×3 after nearest ×2 upsampling, i < L−1 → decoder.up.{i}.upsample.conv
 *   decoder/GroupNorm_0, Conv_L   GN, then 3×3 ch→3 with bias              → decoder.norm_out, decoder.conv_out
 * ResBlock: GroupNorm_0 → swish → Conv_0 (3×3, no bias) → GroupNorm_1 → swish → Conv_1 (3×3, no bias); when the
 * width changes, Conv_2 (1×1, no bias) of the branch output is the skip: VqGan's norm1, conv1, norm2, conv2,
 * nin_shortcut, with the same quirk.
 *
 * Architecture from the shapes: ch from encoder/Conv_0, L from the decoder's conv count (L + 1), blocks per
 * level from the encoder's ResBlock count (L + 1 levels' worth: Flax's middle stage repeats num_res_blocks),
 * multipliers from each level's first block. GroupNorm groups are not stored; Flax's default is 32.
 */
import { Rng } from '../../compute/rng.js';
import { BadInputError } from '../../errors.js';
import type { ImageBatch } from '../../models/types.js';
import { loadParamsStrict } from '../../models/layers.js';
import { VqGan, type VqGanConfig } from '../../models/vq-tokenizer.js';
import { MASKGIT_NUMERIC_VALUES, describeMaskGitNumerics } from '../../models/maskgit-numerics.js';
import { ndarray, type NdArray } from '../../tensors/ndarray.js';
import type { ImportOptions, ImportedNetwork, Network, WeightKind } from '../kind.js';
import { reshape } from '../layout.js';
import type { CheckpointSource } from '../source.js';
import { TensorTaker, dim } from '../take.js';

/** One upstream tensor: its Flax path, its stored shape, and the project parameter it becomes. */
export interface FlaxTensor {
  flax: string;
  stored: number[];
  name: string;
  /** The project's shape (a reshape of the stored values when it differs). */
  shape: number[];
}

/** Flax's nn.GroupNorm default; the checkpoint does not store it. */
const GROUPS = 32;

/**
 * Reads every tensor of `table` (shape-checked, floating point) into project names. Every source tensor under
 * 'params/' must be in the table: one that is not means the file's structure differs from the architecture its
 * shapes implied (e.g. a decoder with more blocks than the encoder), which is refused, naming the tensor.
 */
export async function takeFlaxTable(
  t: TensorTaker,
  table: readonly FlaxTensor[],
): Promise<{ tensors: Map<string, NdArray>; unused: string[] }> {
  const path = t.src.path;
  for (const e of table) {
    const shape = t.shape(e.flax);
    if (shape.length !== e.stored.length || shape.some((d, i) => d !== e.stored[i])) {
      throw new BadInputError(
        `${path}: tensor '${e.flax}' has shape [${shape.join(', ')}], expected [${e.stored.join(', ')}]`,
      );
    }
  }
  const stray = t.unused().filter((n) => n.startsWith('params/') && !table.some((e) => e.flax === n));
  if (stray.length > 0) {
    throw new BadInputError(
      `${path}: tensor '${stray[0]}' does not fit the architecture read from the shapes` +
        (stray.length > 1 ? ` (nor do ${stray.length - 1} more)` : ''),
    );
  }
  const tensors = new Map<string, NdArray>();
  for (const e of table) {
    const raw = await t.take(e.flax, e.stored);
    if (!(raw.data instanceof Float32Array)) {
      throw new BadInputError(`${path}: tensor '${e.flax}' is ${raw.dtype}, expected floating point`);
    }
    tensors.set(e.name, reshape(raw, e.shape, `${path}: ${e.flax}`));
  }
  return { tensors, unused: t.unused() };
}

/** The Flax tensors of a MaskGIT VQGAN of this size, in VqGan's parameter order. */
export function tokenizerTable(cfg: VqGanConfig): FlaxTensor[] {
  const { chBase: ch, chMult, numResBlocks: nrb, numResMids, chLatent, codes } = cfg;
  if (numResMids !== nrb) throw new RangeError('MaskGIT repeats num_res_blocks in the middle stage');
  const table: FlaxTensor[] = [];
  const add = (flax: string, name: string, shape: number[]): void => {
    table.push({ flax: `params/${flax}`, stored: shape, name, shape });
  };
  const conv = (flax: string, name: string, k: number, cin: number, cout: number, bias: boolean): void => {
    add(`${flax}/kernel`, `${name}.weight`, [k, k, cin, cout]);
    if (bias) add(`${flax}/bias`, `${name}.bias`, [cout]);
  };
  const norm = (flax: string, name: string, c: number): void => {
    add(`${flax}/scale`, `${name}.weight`, [c]);
    add(`${flax}/bias`, `${name}.bias`, [c]);
  };
  const block = (flax: string, name: string, cin: number, cout: number): void => {
    norm(`${flax}/GroupNorm_0`, `${name}.norm1`, cin);
    conv(`${flax}/Conv_0`, `${name}.conv1`, 3, cin, cout, false);
    norm(`${flax}/GroupNorm_1`, `${name}.norm2`, cout);
    conv(`${flax}/Conv_1`, `${name}.conv2`, 3, cout, cout, false);
    if (cin !== cout) conv(`${flax}/Conv_2`, `${name}.nin_shortcut`, 1, cout, cout, false);
  };
  const levels = chMult.length;
  const width = (i: number): number => ch * (chMult[i] as number);
  const top = width(levels - 1);

  conv('encoder/Conv_0', 'encoder.conv_in', 3, 3, ch, false);
  let cin = ch;
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j < nrb; j++) {
      block(`encoder/ResBlock_${i * nrb + j}`, `encoder.down.${i}.block.${j}`, cin, width(i));
      cin = width(i);
    }
  }
  for (let j = 0; j < nrb; j++) block(`encoder/ResBlock_${levels * nrb + j}`, `encoder.mid.${j}`, top, top);
  norm('encoder/GroupNorm_0', 'encoder.norm_out', top);
  conv('encoder/Conv_1', 'encoder.conv_out', 1, top, chLatent, true);

  conv('decoder/Conv_0', 'decoder.conv_in', 3, chLatent, top, true);
  for (let j = 0; j < nrb; j++) block(`decoder/ResBlock_${j}`, `decoder.mid.${j}`, top, top);
  cin = top;
  for (let i = 0; i < levels; i++) {
    const cout = width(levels - 1 - i);
    for (let j = 0; j < nrb; j++) {
      block(`decoder/ResBlock_${nrb + i * nrb + j}`, `decoder.up.${i}.block.${j}`, cin, cout);
      cin = cout;
    }
    if (i < levels - 1) conv(`decoder/Conv_${1 + i}`, `decoder.up.${i}.upsample.conv`, 3, cout, cout, true);
  }
  norm('decoder/GroupNorm_0', 'decoder.norm_out', ch);
  conv(`decoder/Conv_${levels}`, 'decoder.conv_out', 3, ch, 3, true);
  add('quantizer/codebook', 'quantizer.embedding.weight', [codes, chLatent]);
  return table;
}

/** The architecture implied by the shapes (each shape is checked against it afterwards, by the table). */
export function tokenizerConfig(t: TensorTaker, opts: ImportOptions = {}): VqGanConfig {
  const groups = opts.groups ?? GROUPS;
  const path = t.src.path;
  if (!t.has('params/encoder/Conv_0/kernel')) {
    throw new BadInputError(`${path}: no 'params/encoder/Conv_0/kernel': not a MaskGIT VQGAN checkpoint`);
  }
  const ch = dim(t, 'params/encoder/Conv_0/kernel', 3, 4);
  const levels = t.count('params/decoder/Conv_', '/kernel') - 1;
  const blocks = t.count('params/encoder/ResBlock_', '/Conv_0/kernel');
  if (levels < 1 || blocks === 0 || blocks % (levels + 1) !== 0) {
    throw new BadInputError(
      `${path}: ${levels + 1} decoder convs and ${blocks} encoder ResBlocks do not make a MaskGIT VQGAN ` +
        '(ResBlocks must be (levels + 1) × num_res_blocks)',
    );
  }
  const nrb = blocks / (levels + 1);
  const chMult: number[] = [];
  for (let i = 0; i < levels; i++) {
    const name = `params/encoder/ResBlock_${i * nrb}/Conv_0/kernel`;
    const filters = dim(t, name, 3, 4);
    if (filters % ch !== 0) {
      throw new BadInputError(`${path}: tensor '${name}' has ${filters} filters, not a multiple of ${ch}`);
    }
    if (filters % groups !== 0) {
      throw new BadInputError(
        `${path}: tensor '${name}': ${filters} channels do not split into ${groups} groups (--groups)`,
      );
    }
    chMult.push(filters / ch);
  }
  return {
    chBase: ch,
    chMult,
    numResBlocks: nrb,
    numResMids: nrb,
    chLatent: dim(t, 'params/encoder/Conv_1/kernel', 3, 4),
    codes: dim(t, 'params/quantizer/codebook', 0, 2),
    groups,
    beta: 0.25, // MaskGIT's commitment_cost (training only; recorded so the config rebuilds a VqGan)
    numerics: opts.numerics ?? 'lea-port',
  };
}

async function importTokenizer(src: CheckpointSource, opts: ImportOptions): Promise<ImportedNetwork> {
  const t = new TensorTaker(src);
  const config = tokenizerConfig(t, opts);
  const { tensors, unused } = await takeFlaxTable(t, tokenizerTable(config));
  return {
    tensors,
    config: { ...config },
    unused,
    notes: {
      numerics: describeMaskGitNumerics(config.numerics),
      groupNormEps: MASKGIT_NUMERIC_VALUES[config.numerics].groupNormEps,
      groups: opts.groups
        ? `${opts.groups}, from --groups (not stored in the file)`
        : `${GROUPS}, Flax nn.GroupNorm's default (not stored in the file)`,
      inputRange: 'images in [0, 1], reconstructions clamped to [0, 1]',
    },
  };
}

/** Images at most this many pixels (one 256² image) go through the network at once, to bound memory. */
const PIXELS_PER_CHUNK = 256 * 256;

function runChunked(images: ImageBatch, step: (chunk: ImageBatch) => void): void {
  const per = images.height * images.width * 3;
  const n = Math.max(1, Math.floor(PIXELS_PER_CHUNK / (images.height * images.width)));
  for (let i = 0; i < images.count; i += n) {
    const count = Math.min(n, images.count - i);
    step({ ...images, count, data: images.data.subarray(i * per, (i + count) * per) });
  }
}

function buildTokenizer(tensors: Map<string, NdArray>, config: Record<string, unknown>): Network {
  const vq = new VqGan(config as unknown as VqGanConfig, new Rng(0, 'load'));
  try {
    loadParamsStrict(vq.params, tensors, 'maskgit-tokenizer weights');
  } catch (err) {
    vq.dispose();
    throw err;
  }
  const check = (images: ImageBatch): [number, number] => {
    const f = vq.factor;
    if (images.height % f !== 0 || images.width % f !== 0 || images.height === 0 || images.width === 0) {
      throw new BadInputError(
        `images of ${images.height}×${images.width} do not fit the tokenizer: sides must be multiples of ${f}`,
      );
    }
    return vq.grid(images.height, images.width);
  };
  const tokens = (images: ImageBatch): Int32Array => {
    const [rows, cols] = check(images);
    const ids = new Int32Array(images.count * rows * cols);
    let at = 0;
    runChunked(images, (chunk) => {
      ids.set(vq.encode(chunk), at);
      at += chunk.count * rows * cols;
    });
    return ids;
  };
  return {
    outputs: {
      tokens: async (images) => {
        const [rows, cols] = check(images);
        return ndarray('int32', [images.count, rows * cols], tokens(images));
      },
      reconstruct: async (images) => {
        check(images);
        const { height, width } = images;
        const out = new Float32Array(images.count * height * width * 3);
        let at = 0;
        runChunked(images, (chunk) => {
          const ids = tokens(chunk);
          out.set(vq.decode(ids, chunk.count, height, width), at);
          at += chunk.count * height * width * 3;
        });
        return ndarray('float32', [images.count, height, width, 3], out);
      },
    },
    dispose: () => vq.dispose(),
  };
}

export const maskgitTokenizerKind: WeightKind = {
  name: 'maskgit-tokenizer',
  description: "MaskGIT's ImageNet-256 VQGAN tokenizer (tokenizer_imagenet256_checkpoint, Flax msgpack)",
  formats: ['flax-msgpack'],
  options: ['groups', 'numerics'],
  // 2: the config names its numerics (--numerics)
  mappingVersion: 2,
  importFrom: importTokenizer,
  fullSize: {
    chBase: 128,
    chMult: [1, 1, 2, 2, 4],
    numResBlocks: 2,
    numResMids: 2,
    chLatent: 256,
    codes: 1024,
  },
  build: buildTokenizer,
};
