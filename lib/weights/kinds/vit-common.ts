/**
 * What the two ViT kinds (openclip-vit-h14, torchvision-vit-h14) share: checking a planned name mapping
 * against the checkpoint's shapes before reading anything, reading it tensor by tensor into lib/models/vit.ts's
 * names and layouts, and building the runnable network from an artifact.
 */
import { BadInputError } from '../../errors.js';
import { VisionTransformer, parseVitConfig, type VitConfig } from '../../models/vit.js';
import type { NdArray } from '../../tensors/ndarray.js';
import type { ImportOptions, Network } from '../kind.js';
import type { CheckpointSource, TensorRef } from '../source.js';
import { linearFromTorch } from '../layout.js';
import { TensorTaker } from '../take.js';

/** One upstream tensor → one project tensor. */
export interface Mapped {
  from: string;
  to: string;
  /** The upstream shape the sizes imply. */
  shape: number[];
  /** Upstream layout → project layout (identity when absent). */
  convert?: (a: NdArray, what: string) => NdArray;
}

/** A kind's mapping of one file: what to read, and the architecture (lib/models/vit.ts config) it implies. */
export interface VitPlan {
  plan: Mapped[];
  config: VitConfig;
  notes: Record<string, string>;
}

/** Upstream names inside one pre-LN block: `ln_1`/`ln_2` are shared, attention and MLP names differ. */
export interface BlockNames {
  attn: string;
  fc1: string;
  fc2: string;
}

/** The mapping of one upstream pre-LN block `from` (width w, MLP hidden mlp) onto vit.ts's `blocks.i.`. */
export function blockPlan(from: string, to: string, n: BlockNames, w: number, mlp: number): Mapped[] {
  return [
    { from: `${from}ln_1.weight`, to: `${to}norm1.weight`, shape: [w] },
    { from: `${from}ln_1.bias`, to: `${to}norm1.bias`, shape: [w] },
    {
      from: `${from}${n.attn}.in_proj_weight`,
      to: `${to}attn.qkv.weight`,
      shape: [3 * w, w],
      convert: linearFromTorch,
    },
    { from: `${from}${n.attn}.in_proj_bias`, to: `${to}attn.qkv.bias`, shape: [3 * w] },
    {
      from: `${from}${n.attn}.out_proj.weight`,
      to: `${to}attn.proj.weight`,
      shape: [w, w],
      convert: linearFromTorch,
    },
    { from: `${from}${n.attn}.out_proj.bias`, to: `${to}attn.proj.bias`, shape: [w] },
    { from: `${from}ln_2.weight`, to: `${to}norm2.weight`, shape: [w] },
    { from: `${from}ln_2.bias`, to: `${to}norm2.bias`, shape: [w] },
    { from: `${from}${n.fc1}.weight`, to: `${to}mlp.fc1.weight`, shape: [mlp, w], convert: linearFromTorch },
    { from: `${from}${n.fc1}.bias`, to: `${to}mlp.fc1.bias`, shape: [mlp] },
    { from: `${from}${n.fc2}.weight`, to: `${to}mlp.fc2.weight`, shape: [w, mlp], convert: linearFromTorch },
    { from: `${from}${n.fc2}.bias`, to: `${to}mlp.fc2.bias`, shape: [w] },
  ];
}

const FLOATS = new Set(['float64', 'float32', 'float16', 'bfloat16']);

/** The named tensor, or BadInputError naming the file and what is missing. */
export function need(src: CheckpointSource, name: string, why = ''): TensorRef {
  const t = src.tensors.get(name);
  if (!t) throw new BadInputError(`${src.path}: has no tensor '${name}'${why ? ` (${why})` : ''}`);
  return t;
}

/** BadInputError for a tensor whose shape is not the `expected` pattern. */
export function badShape(src: CheckpointSource, ref: TensorRef, expected: string): BadInputError {
  return new BadInputError(
    `${src.path}: tensor '${ref.name}' has shape [${ref.shape.join(', ')}], expected ${expected}`,
  );
}

/** The block count: indices i of `${prefix}${i}.` must run 0..n−1 without gaps. */
export function countLayers(src: CheckpointSource, prefix: string): number {
  const seen = new Set<number>();
  for (const name of src.tensors.keys()) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)\./.exec(name.slice(prefix.length));
    if (m) seen.add(Number(m[1]));
  }
  for (let i = 0; i < seen.size; i++)
    if (!seen.has(i)) throw new BadInputError(`${src.path}: blocks '${prefix}N' skip index ${i}`);
  if (seen.size === 0) throw new BadInputError(`${src.path}: has no transformer blocks '${prefix}N.*'`);
  return seen.size;
}

/** heads = opts.heads, or width / the published head width; must divide the width. */
export function headCount(
  src: CheckpointSource,
  width: number,
  headWidth: number,
  opts: ImportOptions,
): number {
  const heads = opts.heads ?? width / headWidth;
  if (!Number.isInteger(heads) || heads < 1 || width % heads !== 0)
    throw new BadInputError(
      `${src.path}: width ${width} does not split into ${opts.heads ?? `width / ${headWidth}`} heads` +
        (opts.heads ? '' : ' (pass the head count explicitly)'),
    );
  return heads;
}

/**
 * Checks every planned tensor's shape and that no tensor under `owned` is left out of the plan (an
 * architecture variant the model does not implement) before reading anything, then reads and converts them
 * one at a time. Tensors outside `owned` are reported unused, never read.
 */
export async function readMapped(
  src: CheckpointSource,
  plan: readonly Mapped[],
  owned: (name: string) => boolean,
): Promise<{ tensors: Map<string, NdArray>; unused: string[] }> {
  const planned = new Set(plan.map((m) => m.from));
  for (const name of src.tensors.keys())
    if (owned(name) && !planned.has(name))
      throw new BadInputError(
        `${src.path}: tensor '${name}' belongs to an architecture variant this kind does not run`,
      );
  const taker = new TensorTaker(src);
  for (const m of plan) {
    const ref = need(src, m.from);
    if (!FLOATS.has(ref.dtype))
      throw new BadInputError(`${src.path}: tensor '${m.from}' is ${ref.dtype}, not floating-point`);
    if (ref.shape.join() !== m.shape.join())
      throw new BadInputError(
        `${src.path}: tensor '${m.from}' has shape [${ref.shape.join(', ')}], expected [${m.shape.join(', ')}]`,
      );
  }
  const tensors = new Map<string, NdArray>();
  for (const m of plan) {
    const a = await taker.take(m.from, m.shape);
    tensors.set(m.to, m.convert ? m.convert(a, `${src.path}: tensor '${m.from}'`) : a);
  }
  return { tensors, unused: taker.unused() };
}

/** The runnable network of an artifact: one output, `name`. */
export function buildVit(
  tensors: Map<string, NdArray>,
  config: Record<string, unknown>,
  kind: string,
  name: 'features' | 'logits',
): Network {
  const source = `${kind} artifact`;
  const vit = new VisionTransformer(parseVitConfig(config, source), tensors, source);
  return { outputs: { [name]: (images) => vit.run(images) }, dispose: () => vit.dispose() };
}
